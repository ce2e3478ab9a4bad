"""``ollama-proxy --version``: the release, its newest migration, and the configured store's."""

from __future__ import annotations

import pytest

from ollama_proxy import __version__
from ollama_proxy.cli import main
from ollama_proxy.store.migrate import HEAD_REVISION
from tests.unit.cli.conftest import open_test_store

_store = open_test_store


def test_version_names_the_release_its_newest_migration_and_the_stores(config, tmp_path, capsys):
    _store(tmp_path).close()
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ollama-proxy {__version__} (migrations up to {HEAD_REVISION})",
        f"store: at migration {HEAD_REVISION} ({tmp_path / 'store.db'})"]


def test_version_is_a_number_from_the_package_metadata():
    assert __version__.count(".") == 2 and __version__.replace(".", "").isdigit()


def test_version_says_when_the_store_is_not_made_yet(config, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.splitlines()[1] == f"store: none yet at {tmp_path / 'store.db'}"
