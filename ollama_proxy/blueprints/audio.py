"""Serve OpenAI's audio transcriptions (``POST /v1/audio/transcriptions``) by forwarding the form to Ollama.

Ollama turns the form (the audio file, ``model``, ``language``, ``prompt``,
``response_format``) into a chat about the audio and answers ``{"text"}``, or
plain text. The proxy sends the form on as it came, streamed: it reads it only
as far as its ``model`` field (``schemas.multipart``), so the caller's access
to the model is checked and the request goes to a server that has the model, as
a chat would. An alias is sent as the model it names; a provider's model is
refused, providers being sent JSON only.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from ollama_proxy.backends.form_upload import form_body
from ollama_proxy.backends.ollama_headers import upstream_headers
from ollama_proxy.blueprints.native import relay
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.observability.accounting import note_arrival
from ollama_proxy.observability.ledger import current_record, note_model
from ollama_proxy.routing.routes import note_routed, resolve
from ollama_proxy.schemas.multipart import boundary_of, read_field, with_value

bp = Blueprint("audio", __name__)
MODEL_FIELD = "model"


@bp.post("/v1/audio/transcriptions")
def transcriptions() -> Response:
    stream = request.stream
    scanner = read_field(stream.read, boundary_of(request.content_type), MODEL_FIELD)
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
    head = bytes(scanner.head) if route.upstream_model == model else with_value(scanner.head, scanner.span,
                                                                                 route.upstream_model)
    length = request.content_length
    body = form_body(head, stream, None if length is None else length + len(head) - len(scanner.head))
    upstream = route.backend.open("POST", request.path, body=body, headers=upstream_headers(request.headers.items()))
    note_routed(route, upstream)
    response = relay(upstream)
    note_arrival(current_record(), upstream.status < 400)  # read whole: the text came with the answer
    return response
