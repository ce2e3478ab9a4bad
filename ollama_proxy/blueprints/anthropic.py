"""Serve Anthropic's Messages API (``/v1/messages``) on top of Ollama's /api/chat.

Also under ``/anthropic/v1/...`` for configurations written for that prefix.
Protocol knowledge lives in ``translate.anthropic``; this module only glues.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ollama_proxy.relay.streaming import sse_named_event
from ollama_proxy.relay.translated import generate, new_id, prepare, read_body, relay_stream
from ollama_proxy.schemas.anthropic import CountTokensRequest, MessagesRequest
from ollama_proxy.translate.anthropic import tokens
from ollama_proxy.translate.anthropic.answer import to_anthropic_message
from ollama_proxy.translate.anthropic.request import from_anthropic_messages
from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter

bp = Blueprint("anthropic", __name__)
# Built once, not for every request: a schema keeps no request state.
MESSAGES_REQUEST = MessagesRequest()
COUNT_TOKENS_REQUEST = CountTokensRequest()


def messages() -> Response:
    body, route = read_body(MESSAGES_REQUEST)
    ollama_body = prepare(from_anthropic_messages(body))
    message_id, model = new_id("msg_"), body["model"]
    if ollama_body.get("stream"):
        converter = MessagesStreamConverter(message_id, model, new_id=new_id)
        heartbeat = current_app.config["SETTINGS"].service.stream_ping_interval
        return relay_stream(route, "/api/chat", ollama_body, converter, sse_named_event, heartbeat)
    answer = generate(route, "/api/chat", ollama_body)[0]
    return jsonify(to_anthropic_message(answer, message_id=message_id, model=model, new_id=new_id))


def count_tokens() -> Response:
    """Estimate the input tokens of a request (Ollama has no tokenizer endpoint)."""
    body, _ = read_body(COUNT_TOKENS_REQUEST)
    return jsonify(input_tokens=tokens.count_tokens(body))


for _prefix in ("", "/anthropic"):
    bp.add_url_rule(f"{_prefix}/v1/messages", endpoint=f"{_prefix}messages", view_func=messages,
                    methods=["POST"])
    bp.add_url_rule(f"{_prefix}/v1/messages/count_tokens", endpoint=f"{_prefix}count_tokens",
                    view_func=count_tokens, methods=["POST"])
