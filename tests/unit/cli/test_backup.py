"""``ollama-proxy backup`` and ``restore`` on a configured store."""

from __future__ import annotations

import os

import pytest

from ollama_proxy.cli import main
from ollama_proxy.store import Actor, in_use
from tests.unit.cli.conftest import open_test_store

BY = Actor("tester", "cli", "here")


_store = open_test_store


def test_backup_then_restore_brings_back_the_store_as_it_was(config, tmp_path, capsys):
    store = _store(tmp_path)
    store.create_key("before", by=BY)
    store.close()
    assert main(["backup", str(tmp_path / "b.db")]) == 0
    assert "1 keys" in capsys.readouterr().out
    store = _store(tmp_path)
    store.create_key("after", by=BY)
    store.close()
    assert main(["restore", str(tmp_path / "b.db")]) == 0
    assert "start the service now" in capsys.readouterr().out
    store = _store(tmp_path)
    assert [key.name for key in store.list_keys()] == ["before"]
    store.close()


def test_restore_is_refused_in_one_line_while_the_service_holds_the_store(config, tmp_path, capsys):
    _store(tmp_path).close()
    assert main(["backup", str(tmp_path / "b.db")]) == 0
    descriptor = in_use.hold(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert main(["restore", str(tmp_path / "b.db")]) == 1
    finally:
        os.close(descriptor)
    error = capsys.readouterr().err
    assert error.startswith(f"error: the service runs on {tmp_path / 'store.db'} (pid {os.getpid()}): stop it")
    assert len(error.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["restore", "/nonexistent/b.db"], "error: there is no backup file at /nonexistent/b.db"),
    (["backup", "/nonexistent/dir/b.db"], "error: cannot write /nonexistent/dir/b.db"),
])
def test_bad_files_are_said_in_one_line(config, tmp_path, capsys, args, message):
    _store(tmp_path).close()
    assert main(args) == 1
    error = capsys.readouterr().err
    assert error.startswith(message) and len(error.splitlines()) == 1
