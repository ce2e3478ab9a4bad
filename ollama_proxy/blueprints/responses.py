"""Serve OpenAI's Responses API (``/v1/responses``, stateless) on top of Ollama's /api/chat.

Nothing is stored: ``previous_response_id`` and ``store: true`` are refused by
the translator with a clear 400. Protocol knowledge lives in
``translate.responses``; this module only glues.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, after_this_request, jsonify, request

from ollama_proxy.access.end_users import from_openai
from ollama_proxy.ledger import current_record
from ollama_proxy.relay.streaming import sse_event_named_by_type
from ollama_proxy.relay.translated import generate, new_id, now, prepare, read_body, stream_answers
from ollama_proxy.relay.waiting import sse_keepalive
from ollama_proxy.routing.thinking import thinking_for_route
from ollama_proxy.schemas.openai import ResponsesRequest
from ollama_proxy.translate.responses.answer import to_responses_response
from ollama_proxy.translate.responses.request import from_responses_request
from ollama_proxy.translate.responses.stream import ResponsesStreamConverter
from ollama_proxy.translate.responses.tools import left_out_tools

log = logging.getLogger(__name__)
#: Names the declared tools left out (Ollama cannot run them), comma-separated.
LEFT_OUT_TOOLS_HEADER = "X-Ollama-Proxy-Dropped-Tools"

bp = Blueprint("responses", __name__)
# Built once, not for every request: a schema keeps no request state.
RESPONSES_REQUEST = ResponsesRequest()


@bp.post("/v1/responses")
def create_response() -> Response:
    body, route = read_body(RESPONSES_REQUEST, from_openai)
    ollama_body = prepare(thinking_for_route(route, body, from_responses_request(body)))
    _say_left_out(left_out_tools(body))
    response_id, created_at, model = new_id("resp_"), now(), body["model"]
    if ollama_body.get("stream"):
        converter = ResponsesStreamConverter(response_id, created_at, model, new_id=new_id, request=body)
        return stream_answers(route, "/api/chat", ollama_body, [converter], sse_event_named_by_type,
                              keepalive=sse_keepalive)
    answer = generate(route, "/api/chat", ollama_body)[0]
    return jsonify(to_responses_response(answer, response_id=response_id, created_at=created_at, model=model,
                                         new_id=new_id, request=body))


def _say_left_out(tools: list[str]) -> None:
    """Tell the client (a header) and the operator (a log line) which declared tools were left out."""
    if not tools:
        return
    named = ", ".join(tools)
    record = current_record()
    log.info("%s %s (request %s): left out tools Ollama cannot run: %s", request.method, request.path,
             record.request_id if record else "-", named)

    @after_this_request
    def name_them(response: Response) -> Response:
        response.headers[LEFT_OUT_TOOLS_HEADER] = named
        return response
