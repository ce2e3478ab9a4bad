"""Relay an Ollama server's answer in its own wire format: streams line by line, the rest read whole.

Only inference is counted: a management stream's lines (a pull's progress) are no tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from flask import Response, request

from ollama_proxy.backends.ollama_headers import downstream_headers
from ollama_proxy.backends.protocols import OllamaShapedAnswer
from ollama_proxy.client_watch import watch_client
from ollama_proxy.ledger import current_record, note_upstream
from ollama_proxy.observability.accounting import count_body, hold_of, tap_ndjson
from ollama_proxy.observability.cache_figures import withheld_line, withheld_ndjson
from ollama_proxy.relay.streaming import (
    STREAM_HEADERS,
    ClosingStream,
    ndjson_failure,
    relayed,
    stream_failure_logger,
)
from ollama_proxy.routing.overrides import renamed_line, renamed_lines
from ollama_proxy.surfaces import ollama_path

log = logging.getLogger(__name__)


def relay(upstream: OllamaShapedAnswer, rename: str | None = None) -> Response:
    """Turn an upstream's open answer (Ollama's wire format) into the client's response.

    With ``rename``, the answer's ``model`` (each line's, in a stream) becomes that name.
    """
    headers = downstream_headers(upstream.headers.items())
    if upstream.status >= 500:
        log.warning("upstream answered %d to %s %s", upstream.status, request.method, request.path)
    served = ollama_path(request.path)
    record = current_record() if served is not None and served.scheduled else None  # inference: tokens counted
    if upstream.is_ndjson and request.method != "HEAD":
        note_upstream(upstream.waited)
        stop_watching = watch_client(request.environ, upstream.abort)
        stream = ClosingStream(ndjson_body(upstream, rename, record, failure_logger()),
                               lambda: (stop_watching(), upstream.close()), current_record())
        return Response(stream, upstream.status, {**headers, **STREAM_HEADERS}, direct_passthrough=True)
    with upstream:
        body = upstream.read()
        count_body(body, record, hold_of(upstream))  # before the close, which charges a slot Ollama gave no figures
    if record is not None and record.cache_withheld:
        body = withheld_line(body)
    if rename is not None and upstream.status < 400:
        body = renamed_line(body, rename)
    note_upstream(upstream.busy)
    response = Response(body, upstream.status, headers)
    if "Content-Type" not in headers:
        del response.headers["Content-Type"]  # Ollama sent none; don't claim text/html
    return response


def ndjson_body(upstream: OllamaShapedAnswer, rename: str | None, record,
                on_error: Callable[[Exception], None]) -> Iterator[bytes]:
    """Yield an NDJSON answer's bytes, renamed if asked, its tokens counted, a failure as its last line."""
    chunks = upstream.iter_bytes() if rename is None else renamed_lines(upstream.iter_bytes(), rename)
    counted = tap_ndjson(chunks, record, hold_of(upstream))
    return relayed(withheld_ndjson(counted) if record is not None and record.cache_withheld else counted, on_error,
                   ndjson_failure)


def failure_logger() -> Callable[[Exception], None]:
    """Return the ``on_error`` of the current request's stream."""
    return stream_failure_logger(f"{request.method} {request.path}", current_record())
