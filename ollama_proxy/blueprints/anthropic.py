"""Serve Anthropic's Messages API (``/v1/messages``) on top of Ollama's /api/chat.

Also under ``/anthropic/v1/...`` for configurations written for that prefix.
Protocol knowledge lives in ``translate.anthropic``; this module only glues.
"""

from __future__ import annotations

from functools import partial

from flask import Blueprint, Response, current_app, jsonify, request

from ollama_proxy.access.end_users import from_anthropic
from ollama_proxy.greenlets import OFF_LOOP_BYTES, off_loop
from ollama_proxy.relay.streaming import sse_named_event
from ollama_proxy.relay.translated import generate, new_id, prepare, read_body, stream_answers
from ollama_proxy.relay.waiting import pings
from ollama_proxy.routing.names import canonical
from ollama_proxy.routing.routes import Route, body_for
from ollama_proxy.routing.thinking import thinking_for_route
from ollama_proxy.schemas.anthropic import CountTokensRequest, MessagesRequest
from ollama_proxy.translate.anthropic import tokens
from ollama_proxy.translate.anthropic.answer import to_anthropic_message
from ollama_proxy.translate.anthropic.correction import TokenCorrection
from ollama_proxy.translate.anthropic.request import from_anthropic_messages
from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter
from ollama_proxy.translate.anthropic.usage import InputUsage, context_scale, requested_context

bp = Blueprint("anthropic", __name__)
# Built once, not for every request: a schema keeps no request state.
MESSAGES_REQUEST = MessagesRequest()
COUNT_TOKENS_REQUEST = CountTokensRequest()
CORRECTION = "ollama_proxy.token_correction"  # the worker's TokenCorrection, in app.extensions


def messages() -> Response:
    body, route = read_body(MESSAGES_REQUEST, from_anthropic)
    ollama_body = prepare(thinking_for_route(route, body, from_anthropic_messages(body)))
    usage = input_usage(route, body, ollama_body.get("options"))
    message_id, model = new_id("msg_"), body["model"]
    if ollama_body.get("stream"):
        converter = usage.stream(MessagesStreamConverter(message_id, model, new_id=new_id))
        heartbeat = current_app.config["SETTINGS"].service.stream_ping_interval
        return stream_answers(route, "/api/chat", ollama_body, [converter], sse_named_event,
                              keepalive=pings(converter, sse_named_event), heartbeat=heartbeat)
    answer = generate(route, "/api/chat", ollama_body)[0]
    return jsonify(usage.message(to_anthropic_message(answer, message_id=message_id, model=model, new_id=new_id),
                                 answer))


def count_tokens() -> Response:
    """Estimate the input tokens of a request (Ollama has no tokenizer endpoint), corrected as learnt."""
    body, route = read_body(COUNT_TOKENS_REQUEST)
    return jsonify(input_tokens=input_usage(route, body, requested_context(body)).estimated())


def input_usage(route: Route, body: dict, options: dict | None) -> InputUsage:
    """Return how answers to ``body`` report its input tokens: the model's learnt ratio, its report_context."""
    settings = current_app.config["SETTINGS"].token_counts
    correction = current_app.extensions.get(CORRECTION)
    if correction is None:
        correction = current_app.extensions[CORRECTION] = TokenCorrection(
            settings.smoothing, settings.min_prompt_tokens, settings.max_correction)
    model = f"{route.backend.name}:{canonical(route.upstream_model)}"
    num_ctx = (body_for(route, {"options": options or {}}).get("options") or {}).get("num_ctx")
    # Read at C speed, but a megabyte in tens of milliseconds: a large body's, off the event loop.
    large = len(request.get_data()) > OFF_LOOP_BYTES
    estimate = off_loop(lambda: tokens.estimate(body)) if large else tokens.estimate(body)
    learn = partial(correction.observe, model, estimate, context=num_ctx) if settings.learn else None
    return InputUsage(estimate, correction.ratio(model), context_scale(route.override.report_context, num_ctx), learn)


for _prefix in ("", "/anthropic"):
    bp.add_url_rule(f"{_prefix}/v1/messages", endpoint=f"{_prefix}messages", view_func=messages,
                    methods=["POST"])
    bp.add_url_rule(f"{_prefix}/v1/messages/count_tokens", endpoint=f"{_prefix}count_tokens",
                    view_func=count_tokens, methods=["POST"])
