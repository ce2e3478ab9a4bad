"""Serve OpenAI's audio transcriptions (``POST /v1/audio/transcriptions``) by forwarding the form to Ollama.

Ollama turns the form (the audio file, ``model``, ``language``, ``prompt``,
``response_format``) into a chat about the audio and answers ``{"text"}``, or
plain text. The proxy reads the whole form first (``limits.max_body_bytes``), finds
its ``model`` field (``schemas.multipart``), checks the caller may use the model,
and sends the form as a chat is sent: it waits for its slot on a server that has
the model, its client watched meanwhile (a form read to its end leaves nothing
unread on the client's socket, so a hang-up is seen). An alias is sent as the
model it names; a provider's model is refused, providers being sent JSON only.
"""

from __future__ import annotations

import io

from flask import Blueprint, Response, request

from ollama_proxy.backends.ollama_headers import upstream_headers
from ollama_proxy.blueprints.native import relay
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.observability.accounting import note_arrival
from ollama_proxy.observability.ledger import current_record, note_model
from ollama_proxy.routing.routes import note_routed, resolve
from ollama_proxy.schemas.loading import read_request_body
from ollama_proxy.schemas.multipart import boundary_of, read_field, with_value

bp = Blueprint("audio", __name__)
MODEL_FIELD = "model"


@bp.post("/v1/audio/transcriptions")
def transcriptions() -> Response:
    form = read_request_body(request)  # limits.max_body_bytes: a 413 past it, with or without a length
    scanner = read_field(io.BytesIO(form).read, boundary_of(request.content_type), MODEL_FIELD)
    if scanner.span is None:
        raise InvalidRequest("model is required", param=MODEL_FIELD)
    try:
        model = bytes(scanner.head[scanner.span.start:scanner.span.end]).decode()
    except UnicodeDecodeError:
        raise InvalidRequest("model is not UTF-8 text", param=MODEL_FIELD) from None
    if not model:
        raise InvalidRequest("model is required", param=MODEL_FIELD)
    note_model(model)
    route = resolve(model)
    if route.to_provider:
        raise InvalidRequest(f"'{model}' is a provider's model: audio transcriptions go to Ollama servers only",
                             param=MODEL_FIELD)
    note_routed(route)
    if route.upstream_model != model:
        form = with_value(scanner.head, scanner.span, route.upstream_model) + form[len(scanner.head):]
    upstream = route.backend.open("POST", request.path, body=form, headers=upstream_headers(request.headers.items()))
    note_routed(route, upstream)
    response = relay(upstream)
    note_arrival(current_record(), upstream.status < 400)  # read whole: the text came with the answer
    return response
