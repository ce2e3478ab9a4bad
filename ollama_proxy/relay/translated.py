"""Run a translated request against Ollama: whole answers, or streams relayed as SSE.

Every translated surface (OpenAI, Anthropic, Responses) glues the same way:
check the body, translate it to Ollama's shape, fetch its image URLs, ask
Ollama, and translate the answer back. The pieces they share live here, so
the blueprints hold only what differs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Response, copy_current_request_context, current_app, has_request_context, request
from marshmallow import Schema

from ollama_proxy.access.end_users import note_end_user
from ollama_proxy.backends.image_fetcher import resolve_image_urls
from ollama_proxy.backends.protocols import OllamaShapedAnswer
from ollama_proxy.client_watch import watch_client
from ollama_proxy.errors import ProxyError
from ollama_proxy.ledger import current_record, note_model, note_upstream, note_upstream_since
from ollama_proxy.observability.accounting import hold_of, tap_chunks
from ollama_proxy.relay.streaming import (
    STREAM_HEADERS,
    ClosingStream,
    encoded_frames,
    followed_by,
    interleave,
    stream_failure_logger,
    with_heartbeat,
)
from ollama_proxy.relay.waiting import AnswerAfterWait, Opening, respond_when_open, slots_scheduled
from ollama_proxy.routing.routes import Route, body_for, note_routed, resolve
from ollama_proxy.schemas.loading import checked_body, read_request_body
from ollama_proxy.translate.ollama import fold_chunks

log = logging.getLogger(__name__)
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", **STREAM_HEADERS}


def new_id(prefix: str) -> str:
    """Return a fresh id with a surface's prefix (``chatcmpl-``, ``msg_``, ``call_`` …)."""
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def read_body(schema: Schema, end_user: Callable[[dict], str | None] | None = None) -> tuple[dict, Route]:
    """Parse and check the request body, note its model (and ``end_user(body)``) on the record, and route it."""
    body = checked_body(read_request_body(request), schema, current_app.config["SETTINGS"].limits)[1]
    note_model(body["model"])
    if end_user is not None:
        note_end_user(end_user(body))  # before routing: the scheduler's share is the end user's
    return body, resolve(body["model"])


def upstream_body(route: Route, ollama_body: dict):
    """Return the streaming body for the route's backend, built once however many answers it is sent for.

    The backend encodes it: an Ollama server's JSON is serialised once, so n choices send the same
    bytes; a provider translates the body to its own protocol, so it keeps the dict.
    """
    return route.backend.encode(body_for(route, {**ollama_body, "stream": True}))


def post_stream(route: Route, path: str, body) -> OllamaShapedAnswer:
    """Open a stream of the route's model on its backend, sending an ``upstream_body`` (callable from a side thread)."""
    return route.backend.post_json(path, body, model_label=route.model)


def prepare(ollama_body: dict) -> dict:
    """Fetch the image URLs a translated body still names."""
    settings = current_app.config["SETTINGS"].images
    resolve_image_urls(ollama_body, current_app.extensions["ollama_proxy.images"].fetch, settings)
    return ollama_body


def in_parallel(task: Callable[[int], object], n: int) -> list:
    """Run ``task(i)`` for i < n side by side (greenlets under gevent), each in a copy of the request's context."""
    if n == 1:
        return [task(0)]
    tasks = [copy_current_request_context(task) if has_request_context() else task for _ in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: tasks[i](i), range(n)))


def generate(route: Route, path: str, ollama_body: dict, n: int = 1) -> list[dict]:
    """Return n whole Ollama answers, folded from streams a leaving client can close."""
    started = time.perf_counter()
    upstreams = open_streams(route, path, ollama_body, n)
    group = Upstreams(upstreams)
    stop_watching = watch_client(request.environ, group.abort)
    record = current_record()
    try:
        answers = in_parallel(lambda i: fold_chunks(list(tap_chunks(upstreams[i].iter_chunks(), record, i,
                                                                    hold_of(upstreams[i])))), n)
        note_upstream_since(started)  # its wait for a slot is queue time
        return answers
    finally:
        stop_watching()
        group.close()


def open_streams(route: Route, path: str, ollama_body: dict, n: int = 1) -> list[OllamaShapedAnswer]:
    """Open n Ollama streams; if one fails, close the others and raise its error."""
    note_routed(route)
    upstreams = open_answers(route, path, upstream_body(route, ollama_body), n).opened
    note_upstream(max(upstream.waited for upstream in upstreams))
    note_routed(route, upstreams[0])
    return upstreams


def open_answers(route: Route, path: str, body, n: int) -> Upstreams:
    """Open n streams of an ``upstream_body``; if one fails, close the others and raise its error.

    Needs no request context: it may run in a greenlet of its own (an ``Opening``).
    """
    opened: list[OllamaShapedAnswer] = []

    def one(_: int) -> OllamaShapedAnswer:
        upstream = post_stream(route, path, body)
        opened.append(upstream)
        return upstream
    try:
        return Upstreams(in_parallel(one, n))
    except BaseException:
        for upstream in opened:
            upstream.close()
        raise


class Upstreams:
    """The upstream answers behind one client response, closed or aborted together.

    ``abort`` is what the client watcher calls (from the event loop): it drops
    the connections, and the greenlet reading them ends as at any upstream
    failure. ``close`` is for the end of the response.
    """

    def __init__(self, opened: list[OllamaShapedAnswer]):
        self.opened = opened

    @property
    def server(self) -> str | None:
        """The server that answered (the first one's, for n answers), for the access log."""
        return getattr(self.opened[0], "server", None)

    def close(self) -> None:
        for upstream in self.opened:
            upstream.close()

    def abort(self) -> None:
        for upstream in self.opened:
            upstream.abort()


@dataclass
class SseFraming:
    """How one SSE response frames its answers.

    ``encode`` frames one converter output; ``trailer`` returns the frames sent
    after every converter is done, and ``end`` the stream's last bytes (OpenAI's
    ``[DONE]``); with ``heartbeat``, a converter is asked for a ``ping``
    whenever its source is silent that long.
    """

    converters: list
    encode: Callable[[object], bytes]
    trailer: Callable[[], list] = list
    end: bytes = b""
    heartbeat: float | None = None

    def frames(self, upstreams: Upstreams, record, on_error: Callable[[Exception], None]) -> Iterator[bytes]:
        sources = [tap_chunks(upstream.iter_chunks(), record, i, hold_of(upstream))
                   for i, upstream in enumerate(upstreams.opened)]
        if self.heartbeat:
            sources = [with_heartbeat(source, self.heartbeat) for source in sources]
        answers = [encoded_frames(s, c, self.encode, on_error) for s, c in zip(sources, self.converters, strict=True)]
        return followed_by(answers[0] if len(answers) == 1 else interleave(answers), self._last_frames)

    def _last_frames(self) -> Iterator[bytes]:
        for frame in self.trailer():
            yield self.encode(frame)
        if self.end:
            yield self.end

    def failed(self, error: ProxyError) -> Iterator[bytes]:
        """Return the frames of a stream that failed before its answers began."""
        for frame in self.converters[0].fail(error.message):
            yield self.encode(frame)
        if self.end:
            yield self.end


def stream_answers(route: Route, path: str, ollama_body: dict, converters: list, encode: Callable[[object], bytes],
                   *, keepalive: Callable[[], list[bytes]], trailer: Callable[[], list] = list, end: bytes = b"",
                   heartbeat: float | None = None) -> Response:
    """Open one stream per converter and relay their frames as SSE (see ``SseFraming``); keep it alive while it waits.

    A request still waiting for its slot after ``scheduling.keepalive_interval``
    (with ``heartbeat``: one whose answer has not begun within it, as a model
    loads) starts its stream at once and gets ``keepalive()`` until its answers
    open; a failure then arrives as the surface's error frame.
    """
    framing = SseFraming(converters, encode, trailer, end, heartbeat)
    n = len(converters)
    if heartbeat is None and (route.to_provider or not slots_scheduled()):  # nothing waits: no greenlet to open it
        return _sse_response(Upstreams(open_streams(route, path, ollama_body, n)), framing)
    note_routed(route)
    body = upstream_body(route, ollama_body)

    def opened(upstreams: Upstreams) -> Response:
        note_upstream(max(upstream.waited for upstream in upstreams.opened))
        note_routed(route, upstreams.opened[0])
        return _sse_response(upstreams, framing)

    def after_wait(opening: Opening, interval: float) -> AnswerAfterWait:
        on_error, record = _stream_failure_logger(), current_record()

        def fail(error: ProxyError) -> Iterator[bytes]:
            on_error(error)
            return framing.failed(error)
        cadence = interval if heartbeat is None else min(interval, heartbeat)
        return AnswerAfterWait(opening, request.environ, cadence, keepalive=keepalive, fail=fail,
                               relay=lambda upstreams: framing.frames(upstreams, record, on_error))
    return respond_when_open(lambda: open_answers(route, path, body, n), opened, after_wait, SSE_HEADERS, heartbeat)


def _sse_response(upstreams: Upstreams, framing: SseFraming) -> Response:
    """Stream the answers' frames; close the answers when the response closes, abort them when the client leaves."""
    record = current_record()
    frames = framing.frames(upstreams, record, _stream_failure_logger())
    stop_watching = watch_client(request.environ, upstreams.abort)
    return Response(ClosingStream(frames, lambda: (stop_watching(), upstreams.close()), record), 200, SSE_HEADERS,
                    direct_passthrough=True)


def _stream_failure_logger() -> Callable[[Exception], None]:
    return stream_failure_logger(f"{request.method} {request.path}", current_record())
