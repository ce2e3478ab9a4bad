"""Pooled connections to Ollama that check for a dropped peer with one system call, and tell what they sent.

Before reusing a pooled connection, urllib3 asks whether the server closed it
by polling the socket with a zero timeout. Under gevent ``select.poll`` is
gevent's, which builds watchers and runs the event loop for that question: a
twentieth of the CPU of a proxied request. A zero-timeout poll never blocks,
so the system's own poll answers it.

A request sent inside ``Sending`` notes on it the connection it went out on,
once the whole request is out, and when: until Ollama answers, nothing else
holds that connection, and a client that leaves meanwhile must reach it.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import urllib3

try:
    from gevent.monkey import get_original
except ImportError:  # gevent is a dependency; this keeps the module importable without it
    _system_poll = select.poll
else:
    _system_poll = get_original("select", "poll")


def readable_now(sock) -> bool:
    """Say whether ``sock`` has something to read (data, or the peer's close) right now."""
    poller = _system_poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


_current = threading.local()  # greenlet-local under gevent's patching: the Sending of each request's greenlet


class Sending:
    """The request this greenlet sends next, once it is out: its connection and the time it went.

    ``half_close`` may be called from any greenlet, the event loop's included:
    Ollama reads the end of what it is sent as its client leaving, and stops.
    """

    def __init__(self) -> None:
        self.connection: urllib3.connection.HTTPConnection | None = None
        self.sent_at: float | None = None  # perf_counter time the whole request was out
        self.half_closed = False

    def __enter__(self) -> Sending:
        _current.sending = self
        return self

    def __exit__(self, *exc) -> None:
        _current.sending = None

    def half_close(self) -> bool:
        """Tell Ollama nothing more comes; False if the request is not all out yet (nothing was done)."""
        sock = self.connection.sock if self.connection is not None else None
        if sock is None:
            return False
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        self.half_closed = True
        return True


class CheckedConnection(urllib3.connection.HTTPConnection):
    """urllib3's plain HTTP connection, with the cheap check for a dropped peer."""

    @property
    def is_connected(self) -> bool:
        # Readable while idle in the pool means closed (or garbage ahead): either way, not reusable.
        return self.sock is not None and not readable_now(self.sock)

    def request(self, *args, **kwargs) -> None:
        super().request(*args, **kwargs)
        sending = getattr(_current, "sending", None)
        if sending is not None:
            sending.connection, sending.sent_at = self, time.perf_counter()
