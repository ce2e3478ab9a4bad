"""Serve OpenAI's audio transcriptions (``POST /v1/audio/transcriptions``) by forwarding the form to Ollama.

Ollama turns the form (the audio file, ``model``, ``language``, ``prompt``,
``response_format``) into a chat about the audio and answers ``{"text"}``, or
plain text. The proxy reads the whole form first (``limits.max_body_bytes``) and
reads it as Ollama's Go reads it, URL query included (``schemas.multipart``):
a form that could be read two ways is refused, and its one ``model`` is the
model checked against the caller's key. The form goes on re-encoded, with that
model (an alias as the model it names) and without the URL query, and is sent
as a chat is sent: it waits for its slot on a server that has the model, its
client watched meanwhile (a form read to its end leaves nothing unread on the
client's socket, so a hang-up is seen). A provider's model is refused,
providers being sent JSON only.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from ollama_proxy.backends.ollama_headers import upstream_headers
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.greenlets import OFF_LOOP_BYTES, off_loop
from ollama_proxy.ledger import current_record, note_model
from ollama_proxy.observability.accounting import estimate_answer, note_arrival
from ollama_proxy.relay.native import relay
from ollama_proxy.routing.routes import note_routed, resolve
from ollama_proxy.schemas.loading import read_request_body
from ollama_proxy.schemas.multipart import read_form, write_form

bp = Blueprint("audio", __name__)


@bp.post("/v1/audio/transcriptions")
def transcriptions() -> Response:
    raw = read_request_body(request)  # limits.max_body_bytes: a 413 past it, with or without a length
    content_type, query = request.content_type, request.query_string

    def read():
        return read_form(content_type, raw, query)
    form = off_loop(read) if len(raw) > OFF_LOOP_BYTES else read()
    model = form.model
    note_model(model)
    route = resolve(model)
    if route.to_provider:
        raise InvalidRequest(f"'{model}' is a provider's model: audio transcriptions go to Ollama servers only",
                             param="model")
    note_routed(route)
    form_type, body = write_form(form.with_model(route.upstream_model))
    headers = {k: v for k, v in upstream_headers(request.headers.items()).items() if k.lower() != "content-type"}
    upstream = route.backend.open("POST", request.path, body=body, headers={**headers, "Content-Type": form_type})
    note_routed(route, upstream)
    response = relay(upstream)
    record = current_record()
    note_arrival(record, upstream.status < 400)  # read whole: the text came with the answer
    if upstream.status < 400:  # Ollama counts no tokens here: its GPU time is measured, its text's tokens estimated
        estimate_answer(record, response.get_data())
    return response
