"""Serve OpenAI's embeddings endpoint on top of Ollama's /api/embed."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ollama_proxy.accounting import note_answer
from ollama_proxy.blueprints.relay import backend, read_body
from ollama_proxy.logs import current_record, note_route
from ollama_proxy.schemas.openai import EmbeddingsRequest
from ollama_proxy.translate import openai as oa

bp = Blueprint("embeddings", __name__)


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    body = read_body(EmbeddingsRequest())
    encoding = oa.encoding_format(body)
    server = backend()
    note_route(server.name, body["model"])
    with server.post_json("/api/embed", oa.from_openai_embeddings(body)) as upstream:
        answer = upstream.json()
    note_answer(current_record(), answer)
    return jsonify(oa.to_openai_embeddings(answer, model=body["model"], encoding_format=encoding))
