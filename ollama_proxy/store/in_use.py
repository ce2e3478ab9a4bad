"""Tell whether the service runs on a SQLite store: every worker holds a shared lock beside it while it lives.

A lock, not a pid file or the systemd unit's name: the kernel drops it when the process ends however it
ends (no stale file after a crash), it marks every way of running the proxy (the unit, ``ollama-proxy
serve``, gunicorn by hand, a container sharing the volume), and it names the store itself rather than a
service that might run on another one. ``ollama-proxy restore`` takes it exclusively; a worker that boots
during a restore waits for it and then serves the restored store.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from sqlalchemy.engine import make_url

SUFFIX = ".in-use"


class InUse(Exception):
    """The service runs on the store; the message names its processes."""


def lock_path(database: str) -> str:
    return os.path.abspath(database) + SUFFIX


def sqlite_database(url: str) -> str | None:
    """Return the absolute path of the SQLite file a ``store.url`` names, or None for another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)


def hold(url: str) -> int | None:
    """Take the shared lock of the store at ``url`` for this process's life (None: not a SQLite file).

    Return the descriptor holding it: it is never closed, so the lock goes with the process.
    """
    database = sqlite_database(url)
    if database is None:
        return None
    descriptor = os.open(lock_path(database), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
    fcntl.flock(descriptor, fcntl.LOCK_SH)  # waits while a restore runs
    return descriptor


@contextmanager
def exclusive(database: str):
    """Hold the lock of ``database`` alone while the block runs; raise ``InUse`` at once if a worker holds it."""
    descriptor = os.open(lock_path(database), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = holders(lock_path(database))
            named = f" (pid {', '.join(map(str, pids))})" if pids else ""
            raise InUse(f"the service runs on {database}{named}") from None
        yield
    finally:
        os.close(descriptor)


def holders(path: str, locks_file: str = "/proc/locks") -> list[int]:
    """Return the pids holding a lock on ``path``, as Linux lists them (empty where it does not)."""
    try:
        status = os.stat(path)
        with open(locks_file) as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    inode = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    pids = set()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF"; a waiter's line has "->" after the number
        fields = [f for f in fields if f != "->"]
        if len(fields) >= 6 and fields[5] == inode and fields[4].isdigit():
            pids.add(int(fields[4]))
    return sorted(pids)
