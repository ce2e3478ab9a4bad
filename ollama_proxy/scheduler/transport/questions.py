"""The scheduler's questions outside a request's own wait: the arbiter's state, on a line of its own, and the
word a waiting request waits for."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import gevent
from gevent.event import AsyncResult

from ollama_proxy.scheduler.transport.wire import Link

log = logging.getLogger(__name__)
RECONNECT_DELAY = 0.02  # seconds between tries to reach a new arbiter, for the client's first RECONNECT_QUICKLY


def ask_status(ask: Callable[[Callable[[dict], None]], Link], timeout: float) -> dict | None:
    """The arbiter's state (``snapshot``) asked on a line ``ask(receive)`` opens, or None if it did not answer
    within ``timeout`` seconds."""
    question = uuid.uuid4().hex
    answer = AsyncResult()

    def receive(message: dict) -> None:
        if message.get("id") == question:
            answer.set(message["status"])
    link = None
    try:
        with gevent.Timeout(timeout, False):
            link = _question_link(ask, receive)
            link.send({"op": "status", "id": question})
            for message in () if answer.ready() else link.messages():
                receive(message)
                if answer.ready():
                    break
    except (OSError, ValueError, KeyError) as exc:
        log.warning("the scheduler did not answer a status question: %s", exc)
    finally:
        if link is not None:
            link.close()
    return answer.value if answer.ready() else None


def _question_link(ask: Callable[[Callable[[dict], None]], Link], receive: Callable[[dict], None]) -> Link:
    while True:  # while a new arbiter takes over; the caller's timeout ends it
        try:
            return ask(receive)
        except OSError:
            gevent.sleep(RECONNECT_DELAY)


class Reply:
    """The word a waiting request gets, set once from another greenlet: the client's waiting primitive
    (``SchedulerClient(reply=...)`` takes another, as a test's)."""

    def __init__(self) -> None:
        self._result = AsyncResult()

    def set(self, message: dict) -> None:
        self._result.set(message)

    def ready(self) -> bool:
        return self._result.ready()

    def wait(self, seconds: float) -> dict | None:
        """The message set within ``seconds``, or None."""
        try:
            return self._result.get(timeout=max(0.0, seconds))
        except gevent.Timeout:
            return None
