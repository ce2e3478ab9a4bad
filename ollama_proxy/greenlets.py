"""Whether this process runs greenlets (gunicorn's gevent worker patched the socket module); work kept off its loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def gevent_active() -> bool:
    """Say whether gevent has patched the socket module (a gevent worker is running)."""
    monkey = sys.modules.get("gevent.monkey")  # patching imports it; no import on every request
    return monkey is not None and monkey.is_module_patched("socket")


def off_loop(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread of the hub's pool and wait for it, where greenlets run; else here.

    For CPU work long enough to be felt (checking a body of many megabytes): the
    interpreter hands the GIL between that thread and the event loop every few
    milliseconds, so the worker's other streams go on meanwhile.
    """
    if not gevent_active():
        return work()
    import gevent

    done, outcome = gevent.get_hub().threadpool.apply(_outcome_of, (work,))
    if not done:
        raise outcome  # here, as if it had run here: the pool would print it as a fault of its own
    return outcome


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
