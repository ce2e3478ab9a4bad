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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from flask import Response, current_app, request
from marshmallow import Schema

from ollama_proxy.backends.image_fetcher import resolve_image_urls
from ollama_proxy.backends.ollama import OllamaBackend, UpstreamResponse
from ollama_proxy.logs import note_model
from ollama_proxy.schemas.loading import load, parse_json_object
from ollama_proxy.streaming import STREAM_HEADERS, ClosingStream, converted, interleave, with_heartbeat

log = logging.getLogger(__name__)
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", **STREAM_HEADERS}


def new_id(prefix: str) -> str:
    """Return a fresh id with a surface's prefix (``chatcmpl-``, ``msg_``, ``call_`` …)."""
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def backend() -> OllamaBackend:
    return current_app.extensions["ollama_proxy.backend"]


def read_body(schema: Schema) -> dict:
    """Parse and check the request body, and note its model for the access log."""
    body = load(schema, parse_json_object(request.get_data()))
    note_model(body["model"])
    return body


def prepare(ollama_body: dict) -> dict:
    """Fetch the image URLs a translated body still names."""
    settings = current_app.config["SETTINGS"].images
    resolve_image_urls(ollama_body, current_app.extensions["ollama_proxy.images"].fetch, settings.fetch_urls)
    return ollama_body


def in_parallel(task: Callable[[int], object], n: int) -> list:
    """Run ``task(i)`` for i < n side by side (greenlets under gevent)."""
    if n == 1:
        return [task(0)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def generate(path: str, ollama_body: dict, n: int = 1) -> list[dict]:
    """Return n whole Ollama answers."""
    server = backend()  # the side threads have no app context

    def one(_: int) -> dict:
        with server.post_json(path, {**ollama_body, "stream": False}) as upstream:
            return upstream.json()
    return in_parallel(one, n)


def open_streams(path: str, ollama_body: dict, n: int = 1) -> list[UpstreamResponse]:
    """Open n Ollama streams; if one fails, close the others and raise its error."""
    server = backend()  # the side threads have no app context
    opened: list[UpstreamResponse] = []

    def one(_: int) -> UpstreamResponse:
        upstream = server.post_json(path, {**ollama_body, "stream": True})
        opened.append(upstream)
        return upstream
    try:
        return in_parallel(one, n)
    except Exception:
        for upstream in opened:
            upstream.close()
        raise


def sse_response(upstreams: list[UpstreamResponse], converters: list, encode: Callable[[object], bytes], *,
                 trailer: Callable[[], list[bytes]] = list, heartbeat: float | None = None) -> Response:
    """Stream the converters' frames as SSE; closing the response closes every upstream.

    ``encode`` frames one converter output; ``trailer`` returns the bytes sent
    after every converter is done; with ``heartbeat``, a converter is asked for
    a ``ping`` whenever its upstream has been silent that many seconds.
    """
    on_error = partial(_log_stream_failure, f"{request.method} {request.path}")

    def chunks(upstream: UpstreamResponse):
        return with_heartbeat(upstream.iter_chunks(), heartbeat) if heartbeat else upstream.iter_chunks()
    sources = [converted(chunks(u), c, on_error) for u, c in zip(upstreams, converters, strict=True)]

    def frames():
        for frame in interleave(sources):
            yield encode(frame)
        yield from trailer()

    def close_all():
        for upstream in upstreams:
            upstream.close()
    return Response(ClosingStream(frames(), close_all), 200, SSE_HEADERS, direct_passthrough=True)


def _log_stream_failure(described: str, error: Exception) -> None:
    # Runs inside the stream, after the view returned: no request context here.
    log.warning("stream of %s cut: %s", described, error)
