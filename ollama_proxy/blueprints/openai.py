"""Serve OpenAI's API (chat completions, completions, models) on top of Ollama.

Each view: schema ─► translate to Ollama ─► relay ─► translate back ─► JSON or
SSE. Protocol knowledge lives in ``translate.openai``; this module only glues.
``n > 1`` is served by n generations run side by side.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ollama_proxy.access.end_users import from_openai
from ollama_proxy.errors import NotFound
from ollama_proxy.relay.passthrough import pass_through
from ollama_proxy.relay.streaming import SSE_DONE, sse_event
from ollama_proxy.relay.translated import generate, new_id, now, prepare, read_body, stream_answers
from ollama_proxy.relay.waiting import sse_keepalive
from ollama_proxy.routing.names import same_model
from ollama_proxy.routing.routes import Route, visible_listing
from ollama_proxy.routing.thinking import thinking_for_route
from ollama_proxy.schemas.openai import ChatCompletionRequest, CompletionRequest
from ollama_proxy.translate import openai as oa

bp = Blueprint("openai", __name__)
# Built once, not for every request: a schema keeps no request state.
CHAT_COMPLETION_REQUEST = ChatCompletionRequest()
COMPLETION_REQUEST = CompletionRequest()


def _stream(route: Route, path: str, ollama_body: dict, converters: list, include_usage: bool) -> Response:
    """Relay n streams as OpenAI SSE: frames, then (for n > 1) one summed usage frame, then [DONE]."""
    return stream_answers(route, path, ollama_body, converters, sse_event, keepalive=sse_keepalive,
                          trailer=lambda: oa.summed_usage_frames(converters, include_usage), end=SSE_DONE)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    body, route = read_body(CHAT_COMPLETION_REQUEST, from_openai)
    if route.to_provider:
        return pass_through(route)
    gateway = oa.gateway_settings(body)
    ollama_body = prepare(thinking_for_route(route, body, oa.from_openai_chat(body)))
    reply_id, created, model, n = new_id("chatcmpl-"), now(), body["model"], gateway.n
    if gateway.stream:
        converters = [oa.ChatStreamConverter(reply_id, created, model, new_id=new_id, choice_index=i,
                                             include_usage=gateway.include_usage and n == 1,
                                             exclude_reasoning=gateway.exclude_reasoning) for i in range(n)]
        return _stream(route, "/api/chat", ollama_body, converters, gateway.include_usage)
    answers = generate(route, "/api/chat", ollama_body, n)
    completions = [oa.to_openai_chat_completion(a, completion_id=reply_id, created=created, model=model,
                                                new_id=new_id, exclude_reasoning=gateway.exclude_reasoning,
                                                choice_index=i) for i, a in enumerate(answers)]
    return jsonify(oa.merge_completions(completions))


@bp.post("/v1/completions")
def completions() -> Response:
    body, route = read_body(COMPLETION_REQUEST, from_openai)
    if route.to_provider:
        return pass_through(route)
    gateway = oa.gateway_settings(body)
    ollama_body = oa.from_openai_completion(body)
    echo = ollama_body["prompt"] if gateway.echo else ""
    reply_id, created, model, n = new_id("cmpl-"), now(), body["model"], gateway.n
    if gateway.stream:
        converters = [oa.CompletionStreamConverter(reply_id, created, model, choice_index=i, echo_prefix=echo,
                                                   include_usage=gateway.include_usage and n == 1)
                      for i in range(n)]
        return _stream(route, "/api/generate", ollama_body, converters, gateway.include_usage)
    answers = generate(route, "/api/generate", ollama_body, n)
    results = [oa.to_openai_completion(a, completion_id=reply_id, created=created, model=model, choice_index=i,
                                       echo_prefix=echo) for i, a in enumerate(answers)]
    return jsonify(oa.merge_completions(results))


def _model_list() -> dict:
    return oa.to_openai_model_list(visible_listing("/api/tags"))


@bp.get("/v1/models")
def models() -> Response:
    return jsonify(_model_list())


@bp.get("/v1/models/<path:model_id>")
def model(model_id: str) -> Response:
    for entry in _model_list()["data"]:
        if same_model(entry["id"], model_id):
            return jsonify(entry)
    raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
