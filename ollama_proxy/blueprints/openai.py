"""Serve OpenAI's API (chat completions, completions, models) on top of Ollama.

Each view: schema ─► translate to Ollama ─► backend ─► translate back ─► JSON or
SSE. Protocol knowledge lives in ``translate.openai``; this module only glues.
``n > 1`` is served by n generations run side by side.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from flask import Blueprint, Response, current_app, jsonify, request

from ollama_proxy.backends.image_fetcher import resolve_image_urls
from ollama_proxy.backends.ollama import UpstreamResponse
from ollama_proxy.errors import NotFound
from ollama_proxy.logs import note_model
from ollama_proxy.schemas.loading import load, parse_json_object
from ollama_proxy.schemas.openai import ChatCompletionRequest, CompletionRequest
from ollama_proxy.streaming import SSE_DONE, STREAM_HEADERS, ClosingStream, converted, interleave, sse_event
from ollama_proxy.translate import openai as oa

bp = Blueprint("openai", __name__)
log = logging.getLogger(__name__)
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", **STREAM_HEADERS}


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def backend():
    return current_app.extensions["ollama_proxy.backend"]


def read_body(schema) -> dict:
    """Parse and check the request body, and note its model for the access log."""
    body = load(schema, parse_json_object(request.get_data()))
    note_model(body["model"])
    return body


def prepare(ollama_body: dict) -> dict:
    """Fetch the image URLs a translated body still names."""
    settings = current_app.config["SETTINGS"].images
    resolve_image_urls(ollama_body, current_app.extensions["ollama_proxy.images"].fetch, settings.fetch_urls)
    return ollama_body


def in_parallel(task, n: int) -> list:
    """Run ``task(i)`` for i < n side by side (greenlets under gevent)."""
    if n == 1:
        return [task(0)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def generate(path: str, ollama_body: dict, n: int) -> list[dict]:
    """Return n whole Ollama answers."""
    upstream_server = backend()  # the side threads have no app context

    def one(_: int) -> dict:
        with upstream_server.post_json(path, {**ollama_body, "stream": False}) as upstream:
            return upstream.json()
    return in_parallel(one, n)


def open_streams(path: str, ollama_body: dict, n: int) -> list[UpstreamResponse]:
    """Open n Ollama streams; if one fails, close the others and raise its error."""
    opened: list[UpstreamResponse] = []
    upstream_server = backend()  # the side threads have no app context

    def one(_: int) -> UpstreamResponse:
        upstream = upstream_server.post_json(path, {**ollama_body, "stream": True})
        opened.append(upstream)
        return upstream
    try:
        return in_parallel(one, n)
    except Exception:
        for upstream in opened:
            upstream.close()
        raise


def sse_response(upstreams: list[UpstreamResponse], converters: list, trailer: list[dict]) -> Response:
    """Stream the converters' frames as SSE; closing the response closes every upstream."""
    on_error = partial(_log_stream_failure, f"{request.method} {request.path}")
    sources = [converted(u.iter_chunks(), c, on_error) for u, c in zip(upstreams, converters, strict=True)]

    def frames():
        for frame in interleave(sources):
            yield sse_event(frame)
        for frame in trailer_frames(trailer, converters):
            yield sse_event(frame)
        yield SSE_DONE

    def close_all():
        for upstream in upstreams:
            upstream.close()
    return Response(ClosingStream(frames(), close_all), 200, SSE_HEADERS, direct_passthrough=True)


def trailer_frames(trailer: list[dict], converters: list) -> list[dict]:
    """Fill the summed usage into the n > 1 usage frame, once every choice is done."""
    for frame in trailer:
        frame["usage"] = oa.sum_usage([c.usage for c in converters])
    return trailer


def _log_stream_failure(described: str, error: Exception) -> None:
    log.warning("stream of %s cut: %s", described, error)


def _reply_header(prefix: str) -> tuple[str, int]:
    return new_id(prefix), int(time.time())


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    body = read_body(ChatCompletionRequest())
    gateway = oa.gateway_settings(body)
    ollama_body = prepare(oa.from_openai_chat(body))
    reply_id, created = _reply_header("chatcmpl-")
    model, n = body["model"], gateway.n
    if gateway.stream:
        upstreams = open_streams("/api/chat", ollama_body, n)
        converters = [oa.ChatStreamConverter(reply_id, created, model, new_id=new_id, choice_index=i,
                                             include_usage=gateway.include_usage and n == 1,
                                             exclude_reasoning=gateway.exclude_reasoning) for i in range(n)]
        trailer = [oa.usage_frame(reply_id, created, model, {}, "chat.completion.chunk")] \
            if gateway.include_usage and n > 1 else []
        return sse_response(upstreams, converters, trailer)
    answers = generate("/api/chat", ollama_body, n)
    completions = [oa.to_openai_chat_completion(a, completion_id=reply_id, created=created, model=model,
                                                new_id=new_id, exclude_reasoning=gateway.exclude_reasoning,
                                                choice_index=i) for i, a in enumerate(answers)]
    return jsonify(oa.merge_completions(completions))


@bp.post("/v1/completions")
def completions() -> Response:
    body = read_body(CompletionRequest())
    gateway = oa.gateway_settings(body)
    ollama_body = oa.from_openai_completion(body)
    echo = ollama_body["prompt"] if gateway.echo else ""
    reply_id, created = _reply_header("cmpl-")
    model, n = body["model"], gateway.n
    if gateway.stream:
        upstreams = open_streams("/api/generate", ollama_body, n)
        converters = [oa.CompletionStreamConverter(reply_id, created, model, choice_index=i, echo_prefix=echo,
                                                   include_usage=gateway.include_usage and n == 1)
                      for i in range(n)]
        trailer = [oa.usage_frame(reply_id, created, model, {}, "text_completion")] \
            if gateway.include_usage and n > 1 else []
        return sse_response(upstreams, converters, trailer)
    answers = generate("/api/generate", ollama_body, n)
    results = [oa.to_openai_completion(a, completion_id=reply_id, created=created, model=model, choice_index=i,
                                       echo_prefix=echo) for i, a in enumerate(answers)]
    return jsonify(oa.merge_completions(results))


def _tags() -> dict:
    with backend().open("GET", "/api/tags") as upstream:
        upstream.raise_for_error()
        return upstream.json()


@bp.get("/v1/models")
def models() -> Response:
    return jsonify(oa.to_openai_model_list(_tags()))


@bp.get("/v1/models/<path:model_id>")
def model(model_id: str) -> Response:
    listing = oa.to_openai_model_list(_tags())["data"]
    wanted = {model_id, f"{model_id}:latest"}
    for entry in listing:
        if entry["id"] in wanted:
            return jsonify(entry)
    raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
