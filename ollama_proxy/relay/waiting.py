"""Keep a stream whose request waits for its slot alive, in its own protocol, until its answer comes.

A request may wait for a slot up to ``scheduling.max_wait``; a silent connection
that long is cut by client timeouts and front proxies. So a streamed request is
opened by a greenlet of its own (an ``Opening``) while its view waits: if the
answer opens, or the slot is granted, within ``scheduling.keepalive_interval``,
the response is what it always was, refusals keep their status. Otherwise the
response starts at once (200 and the stream's headers) with a keepalive every
interval, then the answer follows in the same stream; a failure meanwhile (the
wait timed out, the upstream failed) ends the stream with the protocol's own
error.

The keepalives are what every client of each protocol skips: on Ollama's NDJSON
a space, which JSON parsers take as leading whitespace of the next line (an
empty line would break the ``ollama`` clients, which parse every line); on SSE a
comment line; Anthropic's clients get its ``ping`` event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from flask import Response, current_app

from ollama_proxy.client_watch import watch_client
from ollama_proxy.errors import ProxyError
from ollama_proxy.greenlets import gevent_active
from ollama_proxy.ledger import RequestRecord, access_record, current_record, note_upstream_since
from ollama_proxy.lines import ndjson_line
from ollama_proxy.relay.streaming import log_if_left

NDJSON_KEEPALIVE = b" "
SSE_KEEPALIVE = b": keepalive\n\n"


def keepalive_interval() -> float:
    """Return ``scheduling.keepalive_interval``: how long a stream waits for its slot in silence."""
    return current_app.config["SETTINGS"].scheduling.keepalive_interval


def slots_scheduled() -> bool:
    """Tell whether a request may wait for a slot here (a server is scheduled, in a gevent worker)."""
    return current_app.extensions["ollama_proxy.dispatcher"].scheduled


def ndjson_keepalive() -> list[bytes]:
    return [NDJSON_KEEPALIVE]


def sse_keepalive() -> list[bytes]:
    return [SSE_KEEPALIVE]


def pings(converter, encode: Callable[[object], bytes]) -> Callable[[], list[bytes]]:
    """Return the keepalive of a converter that has its own (Anthropic's ``ping``, after ``message_start``)."""
    return lambda: [encode(event) for event in converter.ping()]


class Closable(Protocol):
    """An opened answer (or several): closed at the response's end, aborted when the client leaves."""

    def abort(self) -> None: ...

    def close(self) -> None: ...


A = TypeVar("A", bound=Closable)


class Opening(Generic[A]):
    """Open a request's answer in a greenlet (a thread without gevent) of its own.

    Whether it still waits for a slot is on its ``record`` (``slots_awaited``, which the
    dispatcher counts). The answer belongs to whoever takes it (``result``); one that
    comes after the response closed is closed.
    """

    def __init__(self, open_answer: Callable[[], A], record: RequestRecord | None):
        self._record = record
        self.started = time.perf_counter()
        self._answer: A | None = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._handing_over = threading.Lock()  # the answer goes to its reader or is closed, never neither
        self._done = threading.Event()
        if gevent_active():
            import gevent

            gevent.spawn(self._open, open_answer)
        else:
            threading.Thread(target=self._open, args=(open_answer,), daemon=True).start()

    @property
    def waiting_for_slot(self) -> bool:
        return self._record is not None and self._record.slots_awaited > 0

    def _open(self, open_answer: Callable[[], A]) -> None:
        try:
            answer = open_answer()
        except BaseException as exc:  # handed over to the view or the stream, which raise it
            self._error = exc
        else:
            with self._handing_over:
                abandoned, self._answer = self._abandoned, answer
            if abandoned:
                self.abandon()
        finally:
            self._done.set()

    def settle(self, interval: float, deadline: float | None = None) -> bool:
        """Wait for the answer; False as soon as the response should start without it.

        That is when ``interval`` passes with a request still waiting for its
        slot, or when ``deadline`` (if any) passes at all.
        """
        first = interval if deadline is None else min(interval, deadline)
        if self._done.wait(first):
            return True
        if self.waiting_for_slot or first == deadline:
            return False
        return self._done.wait(None if deadline is None else deadline - first)

    def keepalives(self, interval: float, frames: Callable[[], Iterable[bytes]]) -> Iterator[bytes]:
        """Yield ``frames()`` at once and every ``interval`` seconds, until the answer opened or failed.

        The first go out at once: the response's headers leave with them.
        """
        while not self._done.is_set():
            yield from frames()
            self._done.wait(interval)

    def result(self) -> A:
        """Take the answer, or raise why it did not open (once it did either)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        answer, self._answer = self._answer, None
        return answer

    def abandon(self) -> None:
        """Close the answer now if it opened untaken, or when it does: nobody will read it."""
        with self._handing_over:
            self._abandoned = True
            answer, self._answer = self._answer, None
        if answer is not None:
            answer.close()


class AnswerAfterWait(Generic[A]):
    """A response body that keeps the client waiting, then relays the answer once it opened.

    ``relay(answer)`` returns the answer's frames, or raises its error (an
    error status); ``fail(error)`` returns the frames that end the stream with
    it. The client is watched (the answer aborted if it leaves) once the answer
    is relayed; until then the request's own watchers see it go.
    """

    def __init__(self, opening: Opening[A], environ: dict, interval: float, *,
                 keepalive: Callable[[], Iterable[bytes]], relay: Callable[[A], Iterator[bytes]],
                 fail: Callable[[ProxyError], Iterable[bytes]]):
        self._opening = opening
        self._environ = environ
        self._answer: A | None = None
        self._stop_watching: Callable[[], None] = lambda: None
        self._closed = False
        self._body = self._frames(interval, keepalive, relay, fail)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        return next(self._body)

    def _frames(self, interval: float, keepalive, relay, fail) -> Iterator[bytes]:
        yield from self._opening.keepalives(interval, keepalive)
        try:
            self._answer = self._opening.result()
            frames = relay(self._answer)
        except ProxyError as error:
            yield from fail(error)
            return
        self._stop_watching = watch_client(self._environ, self._answer.abort)
        record, server = access_record(self._environ), getattr(self._answer, "server", None)
        if record is not None and server:
            record.backend = server  # the access log's, now that one answered
        yield from frames

    def close(self) -> None:
        """Close the body, and the answer with it, once: when the stream ended, failed, or its client left."""
        if self._closed:
            return
        self._closed = True
        try:
            self._body.close()
        finally:
            self._stop_watching()
            if self._answer is not None:
                self._answer.close()
            else:
                self._opening.abandon()
            log_if_left(access_record(self._environ))


def respond_when_open(open_answer: Callable[[], A], opened: Callable[[A], Response],
                      after_wait: Callable[[Opening[A], float], AnswerAfterWait], headers: dict,
                      deadline: float | None = None) -> Response:
    """The response of every stream that may wait for its slot: one place for each surface.

    ``open_answer()`` runs in an ``Opening``; if the answer opens (or fails) within
    ``scheduling.keepalive_interval`` (and ``deadline``, if any), the response is
    ``opened(answer)``, as it always was. Otherwise it starts now: 200 with
    ``headers``, and ``after_wait(opening, interval)`` as its body.
    """
    opening = Opening(open_answer, current_record())
    interval = keepalive_interval()
    if opening.settle(interval, deadline):
        return opened(opening.result())
    note_upstream_since(opening.started)
    return Response(after_wait(opening, interval), 200, headers, direct_passthrough=True)


def ndjson_after_wait(opening: Opening, environ: dict, interval: float, relay: Callable[[A], Iterator[bytes]],
                      on_error: Callable[[Exception], None]) -> AnswerAfterWait:
    """Return the body of an NDJSON stream that starts before its answer (Ollama's native API).

    An error status the answer comes with, or a failure before it, ends the
    stream with an ``{"error"}`` line, as Ollama reports errors mid-stream.
    """
    def relay_answer(answer) -> Iterator[bytes]:
        answer.raise_for_error()
        return relay(answer)

    def fail(error: ProxyError) -> list[bytes]:
        on_error(error)
        return [ndjson_line({"error": error.message})]
    return AnswerAfterWait(opening, environ, interval, keepalive=ndjson_keepalive, relay=relay_answer, fail=fail)
