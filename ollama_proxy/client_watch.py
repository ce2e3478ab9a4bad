"""Notice a client that hangs up, from the event loop, without a greenlet or a read of its socket."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ollama_proxy.errors import ClientGone
from ollama_proxy.greenlets import gevent_active
from ollama_proxy.ledger import access_record


def watch_client(environ: dict, on_gone: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_gone`` as soon as the client hangs up; return the function that stops watching.

    While Ollama is silent (a model loading, thinking unseen) or a request waits
    for its slot, a client that left is only noticed at the next write. Under
    gevent the event loop watches the client's socket instead: it turns readable
    the moment the peer closes, and a peek then reads b"". No greenlet is spent,
    and several watchers of one client do not contend for its socket; ``on_gone``
    runs in the event loop itself, so it must not block (set a result, shut a
    socket, throw into a greenlet). Elsewhere (tests, other workers) nothing is
    watched.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None or not gevent_active():
        return _not_watching
    import gevent

    watcher = gevent.get_hub().loop.io(sock.fileno(), 1)  # 1: libev's EV_READ

    def readable() -> None:
        gone = _peer_gone(sock)
        if gone is None:
            return  # woken for nothing: keep watching
        # One look either way: a client that sends more (a pipelined request) cannot be told from one that stays.
        watcher.stop()
        if gone:
            record = access_record(environ)
            # A client that read the whole answer hangs up before the server closes the response:
            # that is no leaving. Otherwise the upstream is cut next, so the body still ends
            # "normally": say who ended it.
            if record is not None and not record.completed:
                record.client_left = True
            on_gone()

    watcher.start(readable)
    # Stopped at once, without a switch: gunicorn reads the client's next request from this socket next.
    return watcher.close


def _not_watching() -> None:
    pass


def _peer_gone(sock) -> bool | None:
    """Say whether the peer closed ``sock`` (None: nothing to read yet), without waiting."""
    raw = getattr(sock, "_sock", sock)  # gevent's socket wraps the system's; its own recv would wait in the loop
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return None
    except OSError:  # reset, or closed
        return True


@contextmanager
def cancelled_if_client_leaves(environ: dict | None, stop: Callable[[], bool] | None = None,
                               within: float = 0.0) -> Iterator[None]:
    """Raise ClientGone in this greenlet, wherever it waits, the moment the client hangs up.

    For a call nothing else can interrupt: a request to Ollama blocked until its
    headers come, which Ollama sends with the first token (or, for an answer read
    whole, with its end). The call unwinds as at any failure; urllib3 closes the
    connection, and Ollama cancels the request. With ``stop``, the client's leaving
    calls it first: if it could tell Ollama to stop (True), the call is left to end
    as Ollama answers it, so the slot is held until Ollama let it go; it is raised
    into only if it still waits ``within`` seconds later.
    """
    if environ is None or not gevent_active():
        yield
        return
    import gevent
    from greenlet import getcurrent

    waiting, timer = getcurrent(), None

    def gone() -> None:
        nonlocal timer
        if stop is not None and within > 0 and stop():
            timer = gevent.get_hub().loop.timer(within)
            timer.start(lambda: waiting.throw(ClientGone("the client left before its answer began")))
        else:
            waiting.throw(ClientGone("the client left before its answer began"))
    stop_watching = watch_client(environ, gone)
    try:
        yield
    finally:
        stop_watching()
        if timer is not None:
            timer.close()
