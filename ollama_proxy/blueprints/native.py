"""Serve Ollama's native API (``/``, ``/api/*``) by forwarding it to the Ollama server.

The client's body bytes go on untouched once checked, so fields the proxy does
not know still reach Ollama. Streams (NDJSON) are relayed chunk by chunk;
other answers are read whole, so an upstream failure can still get its own
status instead of a truncated body.
"""

from __future__ import annotations

import logging
import re
from functools import partial

from flask import Blueprint, Response, current_app, request

from ollama_proxy.accounting import count_body, tap_ndjson
from ollama_proxy.backends.ollama import OllamaBackend, UpstreamResponse, downstream_headers, upstream_headers
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.logs import current_record, note_model, note_route, note_upstream
from ollama_proxy.schemas.loading import load, parse_json_object, read_json_body
from ollama_proxy.schemas.ollama import BODY_SCHEMAS
from ollama_proxy.streaming import STREAM_HEADERS, ClosingStream, ndjson_relay, watch_client

bp = Blueprint("native", __name__)
log = logging.getLogger(__name__)
UPLOAD_PIECE = 1024 * 1024
_DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")  # what Ollama itself accepts


def backend() -> OllamaBackend:
    return current_app.extensions["ollama_proxy.backend"]


def relay(upstream: UpstreamResponse) -> Response:
    """Turn Ollama's open answer into the client's response."""
    headers = downstream_headers(upstream.headers.items())
    if upstream.status >= 500:
        log.warning("%s answered %d to %s %s", backend().describe, upstream.status, request.method, request.path)
    if upstream.is_ndjson and request.method != "HEAD":
        on_error = partial(_log_stream_failure, f"{request.method} {request.path}")
        note_upstream(upstream.waited)
        stop_watching = watch_client(request.environ, upstream.abort)
        stream = ClosingStream(ndjson_relay(tap_ndjson(upstream.iter_bytes(), current_record()), on_error),
                               lambda: (stop_watching(), upstream.close()))
        return Response(stream, upstream.status, {**headers, **STREAM_HEADERS}, direct_passthrough=True)
    with upstream:
        body = upstream.read()
    note_upstream(upstream.busy)
    count_body(body, current_record())
    response = Response(body, upstream.status, headers)
    if "Content-Type" not in headers:
        del response.headers["Content-Type"]  # Ollama sent none; don't claim text/html
    return response


def _log_stream_failure(described: str, error: Exception) -> None:
    # Runs inside the stream, after the view returned: no request context here.
    log.warning("stream of %s cut: %s", described, error)


def _forward(body=None, model: str | None = None) -> Response:
    headers = upstream_headers(request.headers.items())
    note_route(backend().name, model)
    return relay(backend().open(request.method, request.path, body=body, headers=headers,
                                query=request.query_string.decode("latin-1")))


def forward_plain() -> Response:
    """Forward a request that has no body to check."""
    return _forward()


def forward_checked() -> Response:
    """Check a JSON body against its endpoint's schema, then forward its bytes as they came."""
    raw = read_json_body(request)
    data = load(BODY_SCHEMAS[request.path], parse_json_object(raw))
    model = data.get("model") or data.get("name") or data.get("source")
    note_model(model)
    return _forward(raw, model)


class _Upload:
    """Stream a blob from the client to Ollama without holding it in memory."""

    def __init__(self, stream, length: int | None):
        self._stream = stream
        self._length = length

    def __len__(self) -> int:
        # A known length lets requests send Content-Length instead of chunking.
        return self._length

    def __iter__(self):
        while True:
            try:
                piece = self._stream.read(UPLOAD_PIECE)
            except OSError:
                # Not an OSError past this point: urllib3 would blame the upstream for it.
                raise InvalidRequest("the upload was cut off: the client stopped sending") from None
            if not piece:
                return
            yield piece


@bp.route("/api/blobs/<path:digest>", methods=["HEAD", "POST"])
def blob(digest: str) -> Response:
    """Check for, or stream in, a model blob."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidRequest(f"not a blob digest: {digest[:80]!r} (expected sha256:<64 hex digits>)")
    path = "/api/blobs/" + digest
    headers = upstream_headers(request.headers.items())
    if request.method == "POST":
        request.max_content_length = current_app.config["SETTINGS"].limits.max_blob_bytes
        upload = _Upload(request.stream, request.content_length)
        # Without a known length, a plain iterator makes requests send it chunked.
        body = upload if request.content_length is not None else iter(upload)
        return relay(backend().open("POST", path, body=body, headers=headers))
    return relay(backend().open("HEAD", path, headers=headers))


for _path in ("/", "/api/version", "/api/tags", "/api/ps"):
    bp.add_url_rule(_path, endpoint=_path, view_func=forward_plain, methods=["GET", "HEAD"])
for _path in BODY_SCHEMAS:
    bp.add_url_rule(_path, endpoint=_path, view_func=forward_checked,
                    methods=["DELETE"] if _path == "/api/delete" else ["POST"])
