"""Whether this process runs greenlets (gunicorn's gevent worker patched the socket module); work kept off its loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_lanes: object | None = None  # this process's gevent semaphore: the off-loop works that may run at once
_lane_count = 2
# Work that grows with a body larger than this runs off the loop (``off_loop``): parsing, hashing, estimating,
# encoding a few hundred KiB already holds the loop for milliseconds, 45 MB for a fifth of a second and more.
OFF_LOOP_BYTES = 256 * 1024
# A body is read this much at a time, the worker's other greenlets let run between pieces: a client that sends
# faster than the proxy reads never makes a read wait, so reading 45 MB whole held the loop 0.1-0.2 s. The
# server's and Werkzeug's buffers copy each piece eight times or so on the loop: six bodies read at once in
# pieces of 1 MiB took 80-120 ms a turn on two busy cores, a stream's chunk waiting for all six.
READ_PIECE_BYTES = 256 * 1024


def gevent_active() -> bool:
    """Say whether gevent has patched the socket module (a gevent worker is running)."""
    monkey = sys.modules.get("gevent.monkey")  # patching imports it; no import on every request
    return monkey is not None and monkey.is_module_patched("socket")


def init_app(app) -> None:
    """Bound the off-loop works that run at once by ``limits.off_loop_threads``."""
    global _lanes, _lane_count
    _lanes, _lane_count = None, app.config["SETTINGS"].limits.off_loop_threads


def off_loop(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread of the hub's pool and wait for it, where greenlets run; else here.

    For CPU work long enough to be felt (checking a body of many megabytes): the
    interpreter hands the GIL between that thread and the event loop every few
    milliseconds, so the worker's other streams go on meanwhile. At most
    ``limits.off_loop_threads`` such works run at once; the others wait their turn
    (first come, first served) without holding a thread of the pool.
    """
    if not gevent_active():
        return work()
    import gevent

    with _lanes_here():
        done, outcome = gevent.get_hub().threadpool.apply(_outcome_of, (work,))
    if not done:
        raise outcome  # here, as if it had run here: the pool would print it as a fault of its own
    return outcome


def _lanes_here():
    # Made in the worker, on its hub, at its first use: a semaphore belongs to the hub that made it.
    global _lanes
    if _lanes is None:
        from gevent.lock import Semaphore

        _lanes = Semaphore(_lane_count)
    return _lanes


def _outcome_of(work: Callable[[], T]) -> tuple[bool, object]:
    try:
        return True, work()
    except Exception as exc:
        return False, exc


def let_others_run() -> None:
    """Let the greenlets that are ready run before this one goes on, where greenlets run; else (and in the hub,
    which may not wait) nothing."""
    if gevent_active():
        import gevent

        if gevent.getcurrent() is not gevent.get_hub():
            gevent.sleep(0)


def read_in_pieces(request) -> bytes:
    """``request.get_data()``, read a piece at a time, letting the loop run between pieces."""
    if getattr(request, "_cached_data", None) is None:
        pieces = []
        while piece := request.stream.read(READ_PIECE_BYTES):
            pieces.append(piece)
            let_others_run()
        # Joined in a thread past a piece (the join lets go of the interpreter while it copies; the loop could not).
        raw = off_loop(lambda: b"".join(pieces)) if len(pieces) > 1 else b"".join(pieces)
        request._cached_data = raw  # as get_data caches it, for whatever reads the body again
    return request.get_data()
