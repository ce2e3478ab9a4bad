"""Serve OpenAI's Responses API (``/v1/responses``, stateless) on top of Ollama's /api/chat.

Nothing is stored: ``previous_response_id`` and ``store: true`` are refused by
the translator with a clear 400. Protocol knowledge lives in
``translate.responses``; this module only glues.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ollama_proxy.relay.streaming import sse_event_named_by_type
from ollama_proxy.relay.translated import (
    Upstreams,
    generate,
    new_id,
    now,
    open_streams,
    prepare,
    read_body,
    sse_response,
)
from ollama_proxy.schemas.openai import ResponsesRequest
from ollama_proxy.translate.responses.answer import to_responses_response
from ollama_proxy.translate.responses.request import from_responses_request
from ollama_proxy.translate.responses.stream import ResponsesStreamConverter

bp = Blueprint("responses", __name__)
# Built once, not for every request: a schema keeps no request state.
RESPONSES_REQUEST = ResponsesRequest()


@bp.post("/v1/responses")
def create_response() -> Response:
    body, route = read_body(RESPONSES_REQUEST)
    ollama_body = prepare(from_responses_request(body))
    response_id, created_at, model = new_id("resp_"), now(), body["model"]
    if ollama_body.get("stream"):
        converter = ResponsesStreamConverter(response_id, created_at, model, new_id=new_id, request=body)
        upstream = open_streams(route, "/api/chat", ollama_body)[0]
        return sse_response([upstream.iter_chunks()], [converter], sse_event_named_by_type, Upstreams([upstream]))
    answer = generate(route, "/api/chat", ollama_body)[0]
    return jsonify(to_responses_response(answer, response_id=response_id, created_at=created_at, model=model,
                                         new_id=new_id, request=body))
