"""The arbiter's own worker's line to it: plain calls, no socket, no encoding.

The worker that holds the arbiter sends it its messages as calls, and the
arbiter's answers reach the waiting requests as calls: a request granted at
once never leaves its greenlet. The line ends when the arbiter does (its worker
resigns, or loses the lead); the client then connects to the next arbiter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from gevent.event import Event

from ollama_proxy.scheduler.transport.arbiter import Arbiter


class _Answers:
    """The arbiter's side of the line (its ``Worker``): answers go straight to the client."""

    def __init__(self, receive: Callable[[dict], None]) -> None:
        self.send = receive
        self.tickets: set[str] = set()
        self.peer = os.getpid()  # the worker it is: the arbiter's own


class InProcessLink:
    """The client's side of the line (its ``Link``)."""

    def __init__(self, arbiter: Arbiter, receive: Callable[[dict], None]) -> None:
        self._arbiter = arbiter
        self._answers = _Answers(receive)
        self._closed = Event()

    def send(self, message: dict) -> None:
        if self._closed.is_set() or self._arbiter.stopped:
            raise OSError("the arbiter in this process has stopped")
        self._arbiter.handle(self._answers, message)

    def messages(self) -> Iterator[dict]:
        """Nothing travels on this line; this ends when the line closes."""
        self._closed.wait()
        yield from ()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._arbiter.gone(self._answers)
