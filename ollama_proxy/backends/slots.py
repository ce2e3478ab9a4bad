"""Bound the requests sent to one server at once, across every worker process.

A server with ``max_concurrent: n`` has n lock files; a request holds one
(``flock``) while it runs. Locks are shared by every worker of the proxy, and
by every proxy on the machine using the same log directory, and a worker that
dies lets go of its locks with it. Taking a lock never blocks: a request that
finds none free polls, sleeping between tries (a greenlet switch under
gevent), until ``routing.slot_wait`` runs out.
"""

from __future__ import annotations

import fcntl
import os
import time

POLL_SECONDS = 0.02


class Slots:
    """n lock files in ``directory``, named after the server."""

    def __init__(self, directory: str, server: str, n: int):
        self._paths = [os.path.join(directory, f"{server}.{i}.lock") for i in range(n)]
        self._directory = directory

    def acquire(self, timeout: float) -> int | None:
        """Hold a free slot and return its descriptor; None if none came free within ``timeout``."""
        os.makedirs(self._directory, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            for path in self._paths:
                fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_SECONDS)

    @staticmethod
    def release(fd: int) -> None:
        """Give a slot back (closing the descriptor drops its lock)."""
        os.close(fd)
