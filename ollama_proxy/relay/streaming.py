"""Frame streams (NDJSON, SSE) and hand them to WSGI so that closing them closes upstream."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from ollama_proxy.errors import ProxyError
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.lines import ndjson_line

log = logging.getLogger(__name__)
# nginx buffers proxied answers unless told not to; a stream must reach the client as it is made.
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
SSE_DONE = b"data: [DONE]\n\n"


def sse_event(data, event: str | None = None) -> bytes:
    """Encode one Server-Sent Event whose data is ``data`` as JSON."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def sse_event_named_by_type(event: dict) -> bytes:
    """Encode an event whose SSE name is its own ``type`` (the Responses API's events)."""
    return sse_event(event, event["type"])


def sse_named_event(named: tuple[str, dict]) -> bytes:
    """Encode a ``(name, data)`` pair as an SSE event of that name (Anthropic's Messages stream)."""
    name, data = named
    return sse_event(data, name)


class ClosingStream:
    """Iterate ``chunks``, counting them onto ``record``, and call ``on_close`` once when the server closes the body.

    The WSGI server calls ``close()`` at the end, on an error, and when the client
    went away, even if the body was never iterated: a generator's own ``finally``
    would not run in that last case, and the upstream connection would leak.
    The ledger leaves the counting of what was sent (bytes, first byte, completed)
    to this body, the one step every chunk of every stream takes.
    """

    counts_onto_record = True

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None], record: RequestRecord | None = None):
        self._chunks = chunks
        self._on_close = on_close
        self._record = record
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        record = self._record
        try:
            chunk = next(self._chunks)
        except StopIteration:
            if record is not None:
                record.completed = True
            raise
        if record is not None:
            if record.first_byte is None:
                record.first_byte = time.perf_counter()
            record.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            try:
                self._on_close()
            finally:
                log_if_left(self._record)


def relayed(pieces: Iterator[bytes], on_error: Callable[[Exception], None],
            failure: Callable[[ProxyError, bytes], Iterable[bytes]]) -> Iterator[bytes]:
    """Pass a stream's bytes through as they come; if the source fails, end with ``failure(error, last byte sent)``.

    The one loop of every stream relayed in its own protocol (native NDJSON, an
    OpenAI pass-through's SSE). Once a stream has started, its status line has
    gone: a failure can only be told in the stream, as the surface tells it.
    """
    last = b"\n"
    try:
        for piece in pieces:
            if piece:
                last = piece[-1:]
                yield piece
    except ProxyError as exc:
        on_error(exc)
        yield from failure(exc, last)


def ndjson_failure(error: ProxyError, last: bytes) -> list[bytes]:
    """End a failed NDJSON stream as Ollama itself does: an ``{"error"}`` line, on a line of its own."""
    return [(b"" if last == b"\n" else b"\n") + ndjson_line({"error": error.message})]


def stream_failure_logger(described: str, record: RequestRecord | None) -> Callable[[Exception], None]:
    """Return a stream's ``on_error``: a warning when the upstream failed it, silence when its client left.

    A client that hangs up has ``watch_client`` cut the upstream, and the read
    that then fails is no fault of the upstream's: the record says who left,
    and ``log_if_left`` tells it when the response closes.
    """
    def on_error(error: Exception) -> None:
        # Runs inside the stream, after the view returned: no request context here.
        if record is None or not record.client_left:
            log.warning("stream of %s cut: %s (request %s)", described, error,
                        record.request_id if record is not None else "-")
    return on_error


def log_if_left(record: RequestRecord | None) -> None:
    """Say, as a stream's response closes, that its client left.

    Told here, not where the upstream's read fails: once the proxy tells Ollama
    it is done (``service.cut_hold``), Ollama may end its answer cleanly or with
    an error line, and the stream then ends as any other. The watcher saw the
    client go: that is the fact, whatever the upstream did after.
    """
    if record is not None and record.client_left:
        log.info("stream of %s %s ended: the client left (request %s)", record.method, record.path,
                 record.request_id)


class StreamConverter(Protocol):
    """What a surface's stream converter offers: frames out for chunks in."""

    finished: bool

    def process(self, chunk: dict) -> list: ...

    def close(self) -> list: ...

    def fail(self, message: str) -> list: ...


HEARTBEAT = object()  # a chunk source's word that nothing came for a while


def encoded_frames(chunks: Iterator[dict], converter: StreamConverter, encode: Callable[[object], bytes],
                   on_error: Callable[[Exception], None]) -> Iterator[bytes]:
    """Yield the encoded frames a converter makes of each chunk, ending with an error frame if the source fails.

    Converting, encoding and the loop are one generator: the one step of this
    module each chunk of a translated stream takes.
    """
    try:
        for chunk in chunks:
            # Only sources wrapped by with_heartbeat send HEARTBEAT: their converters ping.
            for frame in converter.ping() if chunk is HEARTBEAT else converter.process(chunk):
                yield encode(frame)
            if converter.finished:
                return
        last = converter.close()
    except ProxyError as exc:
        on_error(exc)
        last = converter.fail(exc.message)
    for frame in last:
        yield encode(frame)


def followed_by(first: Iterator[bytes], then: Callable[[], Iterable[bytes]]) -> Iterator[bytes]:
    """Yield ``first``'s items, then those of ``then()``, called once ``first`` is done."""
    yield from first
    yield from then()


def interleave(sources: list[Iterator]) -> Iterator:
    """Yield items from several iterators as each produces them.

    Each source is read by its own thread; under gunicorn's gevent worker,
    threads are greenlets, so this costs a greenlet per source, not an OS thread.
    """
    if len(sources) == 1:
        yield from sources[0]
        return
    items: queue.Queue = queue.Queue()
    finished = object()

    def drain(source: Iterator) -> None:
        try:
            for item in source:
                items.put(item)
        finally:
            items.put(finished)

    for source in sources:
        threading.Thread(target=drain, args=(source,), daemon=True).start()
    running = len(sources)
    while running:
        item = items.get()
        if item is finished:
            running -= 1
        else:
            yield item


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def with_heartbeat(items: Iterator, interval: float) -> Iterator:
    """Yield ``items``; whenever none comes for ``interval`` seconds, yield HEARTBEAT.

    The items are read by a thread (a greenlet under gevent); their errors are
    raised here, in the reader's place.
    """
    arrived: queue.Queue = queue.Queue()
    finished = object()

    def drain() -> None:
        try:
            for item in items:
                arrived.put(item)
        except BaseException as exc:  # handed over to the consumer, which raises it
            arrived.put(_Raised(exc))
        finally:
            arrived.put(finished)

    threading.Thread(target=drain, daemon=True).start()
    while True:
        try:
            item = arrived.get(timeout=interval)
        except queue.Empty:
            yield HEARTBEAT
            continue
        if item is finished:
            return
        if isinstance(item, _Raised):
            raise item.error
        yield item
