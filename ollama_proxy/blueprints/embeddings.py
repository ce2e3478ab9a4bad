"""Serve OpenAI's embeddings endpoint on top of Ollama's /api/embed."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ollama_proxy.access.end_users import from_openai
from ollama_proxy.ledger import current_record
from ollama_proxy.observability.accounting import hold_of, note_answer
from ollama_proxy.relay.passthrough import pass_through
from ollama_proxy.relay.translated import read_body
from ollama_proxy.routing.routes import body_for, note_routed
from ollama_proxy.schemas.openai import EmbeddingsRequest
from ollama_proxy.translate import openai as oa

bp = Blueprint("embeddings", __name__)
# Built once, not for every request: a schema keeps no request state.
EMBEDDINGS_REQUEST = EmbeddingsRequest()


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    body, route = read_body(EMBEDDINGS_REQUEST, from_openai)
    if route.to_provider:
        return pass_through(route)
    encoding = oa.encoding_format(body)
    ollama_body = body_for(route, oa.from_openai_embeddings(body))
    with route.backend.post_json("/api/embed", ollama_body, model_label=route.model) as upstream:
        note_routed(route, upstream)
        answer = upstream.json()
        note_answer(current_record(), answer, hold_of(upstream))  # before the close charges its slot otherwise
    return jsonify(oa.to_openai_embeddings(answer, model=body["model"], encoding_format=encoding))
