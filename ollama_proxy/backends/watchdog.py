"""Cut a stream whose upstream stays silent too long, with one timer per stream.

A socket timeout would do it too, but under gevent every read on a socket with
a timeout arms and cancels a timer of its own: a tenth of the CPU a relayed
chunk costs. Here the reader only notes when it starts and stops waiting, and
a repeating timer looks a few times per timeout period.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Checks per timeout period: a silence is cut after between 1 and 1 + 1/CHECKS times the limit.
CHECKS = 8


class IdleWatchdog:
    """Call ``on_idle`` once when a read has waited ``limit`` seconds; stop with ``close``.

    The reader sets ``since`` to ``time.monotonic()`` when a wait starts and back
    to None when something arrived. Time the reader spends elsewhere (writing to
    a slow client) is not silence.
    Needs gevent's hub: the check runs in it, so ``on_idle`` must not block.
    """

    def __init__(self, limit: float, on_idle: Callable[[], None]):
        import gevent

        self.limit = limit
        self.fired = False
        self._on_idle = on_idle
        self.since: float | None = None  # when the reader started waiting; None while it is not
        self._timer = gevent.get_hub().loop.timer(limit / CHECKS, limit / CHECKS)
        self._timer.ref = False  # a silent stream must not keep a stopping worker alive
        self._timer.start(self._check)

    def _check(self) -> None:
        since = self.since
        if since is not None and time.monotonic() - since >= self.limit:
            self.fired = True
            self.close()
            self._on_idle()

    def close(self) -> None:
        self._timer.close()
