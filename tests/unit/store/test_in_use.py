"""The lock a serving worker holds beside a SQLite store, which a restore takes alone."""

from __future__ import annotations

import os

import pytest

from ollama_proxy.store import in_use


def test_a_restore_is_refused_while_a_worker_holds_the_store_naming_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    descriptor = in_use.hold(url)
    try:
        with pytest.raises(in_use.InUse, match=rf"the service runs on .*store.db \(pid {os.getpid()}\)"):
            with in_use.exclusive(str(tmp_path / "store.db")):
                pass
    finally:
        os.close(descriptor)
    with in_use.exclusive(str(tmp_path / "store.db")):
        pass  # the worker gone, the lock is free


def test_only_a_sqlite_file_is_locked():
    assert in_use.hold("postgresql://u@h/db") is None
    assert in_use.hold("sqlite:///:memory:") is None


@pytest.mark.parametrize("line, pids", [
    ("1: FLOCK  ADVISORY  READ  1234 {dev}:{ino} 0 EOF", [1234]),
    ("2: FLOCK  ADVISORY  READ  1234 {dev}:{ino} 0 EOF\n3: FLOCK  ADVISORY  READ  77 {dev}:{ino} 0 EOF", [77, 1234]),
    ("1: -> FLOCK  ADVISORY  WRITE 99 {dev}:{ino} 0 EOF", [99]),  # one waiting for it
    ("1: FLOCK  ADVISORY  READ  1234 {dev}:1 0 EOF", []),  # another file
    ("1: POSIX  ADVISORY  WRITE 55 00:00:1 0 EOF", []),
])
def test_the_holders_are_read_from_the_kernels_table(tmp_path, line, pids):
    path = tmp_path / "store.db.in-use"
    path.touch()
    status = os.stat(path)
    dev = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}"
    table = tmp_path / "locks"
    table.write_text(line.format(dev=dev, ino=status.st_ino) + "\n")
    assert in_use.holders(str(path), str(table)) == pids
