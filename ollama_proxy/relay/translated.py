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
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from flask import Response, copy_current_request_context, current_app, has_request_context, request
from marshmallow import Schema

from ollama_proxy.backends.image_fetcher import resolve_image_urls
from ollama_proxy.backends.protocols import OllamaShapedAnswer
from ollama_proxy.observability.accounting import tap_chunks
from ollama_proxy.observability.ledger import current_record, note_model, note_upstream
from ollama_proxy.relay.streaming import (
    STREAM_HEADERS,
    ClosingStream,
    converted,
    interleave,
    watch_client,
    with_heartbeat,
)
from ollama_proxy.routing.routes import Route, body_for, note_routed, resolve
from ollama_proxy.schemas.loading import load, parse_json_object, read_json_body
from ollama_proxy.translate.ollama import fold_chunks

log = logging.getLogger(__name__)
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", **STREAM_HEADERS}


def new_id(prefix: str) -> str:
    """Return a fresh id with a surface's prefix (``chatcmpl-``, ``msg_``, ``call_`` …)."""
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def read_body(schema: Schema) -> tuple[dict, Route]:
    """Parse and check the request body, note its model for the access log, and route it."""
    body = load(schema, parse_json_object(read_json_body(request)))
    note_model(body["model"])
    return body, resolve(body["model"])


def upstream_body(route: Route, ollama_body: dict) -> dict | bytes:
    """Return the streaming body for the route's backend, built once however many answers it is sent for.

    The backend encodes it: an Ollama server's JSON is serialised once, so n choices send the same
    bytes; a provider translates the body to its own protocol, so it keeps the dict.
    """
    return route.backend.encode(body_for(route, {**ollama_body, "stream": True}))


def post_stream(route: Route, path: str, body: dict | bytes) -> OllamaShapedAnswer:
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
        answers = in_parallel(lambda i: fold_chunks(list(tap_chunks(upstreams[i].iter_chunks(), record))), n)
        note_upstream(time.perf_counter() - started)
        return answers
    finally:
        stop_watching()
        group.close()


def open_streams(route: Route, path: str, ollama_body: dict, n: int = 1) -> list[OllamaShapedAnswer]:
    """Open n Ollama streams; if one fails, close the others and raise its error."""
    note_routed(route)
    body = upstream_body(route, ollama_body)
    opened: list[OllamaShapedAnswer] = []

    def one(_: int) -> OllamaShapedAnswer:
        upstream = post_stream(route, path, body)
        opened.append(upstream)
        return upstream
    try:
        upstreams = in_parallel(one, n)
    except Exception:
        for upstream in opened:
            upstream.close()
        raise
    note_upstream(max(upstream.waited for upstream in upstreams))
    note_routed(route, upstreams[0])
    return upstreams


class Upstreams:
    """The upstream answers behind one client response, closed or aborted together.

    ``abort`` is what the client watcher calls (from its own greenlet): it drops
    the connections, and the greenlet reading them ends as at any upstream
    failure. ``close`` is for the end of the response. An answer still being
    opened (``pending``) gets the same treatment as soon as it opens.
    """

    def __init__(self, opened: list[OllamaShapedAnswer] = (), pending: Future[OllamaShapedAnswer] | None = None):
        self.opened = list(opened)
        self.pending = pending

    def close(self) -> None:
        self._each(lambda upstream: upstream.close())

    def abort(self) -> None:
        self._each(lambda upstream: upstream.abort())

    def _each(self, action: Callable[[OllamaShapedAnswer], None]) -> None:
        for upstream in self.opened:
            action(upstream)
        if self.pending is not None:
            self.pending.add_done_callback(lambda done: done.exception() is None and action(done.result()))


def sse_response(sources: list[Iterator[dict]], converters: list, encode: Callable[[object], bytes],
                 upstreams: Upstreams, *, trailer: Callable[[], list] = list, end: bytes = b"",
                 heartbeat: float | None = None) -> Response:
    """Stream the converters' frames for their chunk sources as SSE.

    ``encode`` frames one converter output; ``upstreams`` are closed when the
    response closes and aborted when the client hangs up; ``trailer`` returns
    the frames sent after every converter is done, and ``end`` the stream's
    last bytes (OpenAI's ``[DONE]``); with ``heartbeat``, a converter is asked
    for a ``ping`` whenever its source is silent that long.
    """
    on_error = partial(_log_stream_failure, f"{request.method} {request.path}")
    record = current_record()
    sources = [tap_chunks(source, record) for source in sources]
    if heartbeat:
        sources = [with_heartbeat(source, heartbeat) for source in sources]
    frames_of = [converted(s, c, on_error) for s, c in zip(sources, converters, strict=True)]

    def frames():
        for frame in interleave(frames_of):
            yield encode(frame)
        for frame in trailer():
            yield encode(frame)
        if end:
            yield end
    stop_watching = watch_client(request.environ, upstreams.abort)
    return Response(ClosingStream(frames(), lambda: (stop_watching(), upstreams.close())), 200, SSE_HEADERS,
                    direct_passthrough=True)


def relay_stream(route: Route, path: str, ollama_body: dict, converter, encode: Callable[[object], bytes],
                 heartbeat: float) -> Response:
    """Relay one stream with pings; start it even before Ollama answers, if that takes long.

    Ollama sends nothing, headers included, while a model loads. Waiting up to
    ``heartbeat`` seconds keeps a quick error's own status (404 for an unknown
    model); past that the stream starts and pings the client until Ollama
    answers, and an error then arrives as the surface's error event.
    """
    note_routed(route)
    pool = ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(post_stream, route, path, upstream_body(route, ollama_body))
    pool.shutdown(wait=False)  # the thread ends when Ollama answers; nobody waits for it here
    try:
        upstream = pending.result(timeout=heartbeat)
    except TimeoutError:
        note_upstream(heartbeat)
        return sse_response([_late_chunks(pending)], [converter], encode, Upstreams(pending=pending),
                            heartbeat=heartbeat)
    note_upstream(upstream.waited)
    note_routed(route, upstream)
    return sse_response([upstream.iter_chunks()], [converter], encode, Upstreams([upstream]), heartbeat=heartbeat)


def _late_chunks(pending: Future[OllamaShapedAnswer]) -> Iterator[dict]:
    yield from pending.result().iter_chunks()


def _log_stream_failure(described: str, error: Exception) -> None:
    # Runs inside the stream, after the view returned: no request context here.
    log.warning("stream of %s cut: %s", described, error)
