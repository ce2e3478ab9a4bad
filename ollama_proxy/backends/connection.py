"""Pooled connections to Ollama that check for a dropped peer with one system call.

Before reusing a pooled connection, urllib3 asks whether the server closed it
by polling the socket with a zero timeout. Under gevent ``select.poll`` is
gevent's, which builds watchers and runs the event loop for that question: a
twentieth of the CPU of a proxied request. A zero-timeout poll never blocks,
so the system's own poll answers it.
"""

from __future__ import annotations

import select

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


class CheckedConnection(urllib3.connection.HTTPConnection):
    """urllib3's plain HTTP connection, with the cheap check for a dropped peer."""

    @property
    def is_connected(self) -> bool:
        # Readable while idle in the pool means closed (or garbage ahead): either way, not reusable.
        return self.sock is not None and not readable_now(self.sock)
