"""Pass an OpenAI request through to an OpenAI-compatible provider: one protocol, no translation.

When the client speaks OpenAI and the model is a provider's, translating to
Ollama's shapes and back would only lose detail. The body goes on as the
client sent it but for the model name and the usage a stream must report
(fields that pick another model are refused); the answer comes back as the
provider sent it but for the model name again (the client's own, as on every
surface), and its usage is read, for the access log, usage records and rate
limits. The backend chooses the headers both ways and blanks its secrets.
"""

from __future__ import annotations

import logging
from typing import cast

from flask import Response, current_app, request

from ollama_proxy.backends.protocols import PassthroughBackend
from ollama_proxy.client_watch import watch_client
from ollama_proxy.errors import ProxyError, to_openai_error
from ollama_proxy.ledger import RequestRecord, current_record, note_upstream
from ollama_proxy.observability.accounting import keep_openai_text, note_arrival, note_tokens, tap_sse
from ollama_proxy.relay.streaming import (
    SSE_DONE,
    STREAM_HEADERS,
    ClosingStream,
    relayed,
    sse_event,
    stream_failure_logger,
)
from ollama_proxy.routing.overrides import renamed_event_line, renamed_line, renamed_lines
from ollama_proxy.routing.routes import Route, named_for, note_routed
from ollama_proxy.schemas.loading import checked_body, read_request_body

log = logging.getLogger(__name__)


def pass_through(route: Route) -> Response:
    """Send the request to the route's provider; relay its answer as it comes."""
    # Only the name changes: overrides are in Ollama's terms, and this body is the provider's own.
    body = named_for(route, checked_body(read_request_body(request), None, current_app.config["SETTINGS"].limits)[0])
    provider = cast(PassthroughBackend, route.backend)  # the caller checked route.to_provider
    upstream = provider.open_openai(request.path, body, request.headers.items())
    note_routed(route, upstream)
    record = current_record()
    headers = dict(upstream.headers)
    renamed = route.model != route.upstream_model
    if headers.get("Content-Type", "").startswith("text/event-stream"):
        note_upstream(upstream.waited)
        stop_watching = watch_client(request.environ, upstream.abort)

        def close() -> None:
            stop_watching()
            upstream.close()
            _note_usage(record, upstream.usage)
        pieces = tap_sse(upstream.iter_bytes(), record)
        if renamed:
            pieces = renamed_lines(pieces, route.model, renamed_event_line)
        on_error = stream_failure_logger(f"POST {request.path}", record)
        return Response(ClosingStream(relayed(pieces, on_error, _openai_failure), close, record), upstream.status,
                        {**headers, **STREAM_HEADERS}, direct_passthrough=True)
    with upstream:
        data = upstream.read()
    note_upstream(upstream.busy)
    note_arrival(record, bool((upstream.usage or {}).get("completion_tokens")))
    _note_usage(record, upstream.usage)
    keep_openai_text(record, data)
    return Response(renamed_line(data, route.model) if renamed else data, upstream.status, headers)


def _openai_failure(error: ProxyError, _last: bytes) -> list[bytes]:
    # An OpenAI stream tells a failure as an error event, then ends as every stream does.
    return [sse_event(to_openai_error(error)), SSE_DONE]


def _note_usage(record: RequestRecord | None, usage: dict | None) -> None:
    if usage:
        note_tokens(record, usage.get("prompt_tokens"), usage.get("completion_tokens"))
