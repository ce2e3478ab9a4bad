"""A fake OpenAI-compatible provider (DeepSeek, DashScope, OpenRouter ...) for tests.

It serves ``GET /v1/models``, ``POST /v1/chat/completions`` (SSE or whole) and
``POST /v1/embeddings`` over real sockets, checks the bearer key, and records
every request (``requests``) so tests can assert what the proxy sent. Tests
script each model's answer (``script``): reasoning, text, tool calls split
into argument fragments, the finish reason; and faults: 429 with Retry-After
for the first K calls, error statuses, a drop mid-stream, a slow first byte.
As OpenAI does, usage comes in a last chunk of its own only when the request
asks for it with ``stream_options.include_usage``.

Bodies are read as a provider written in Go reads them (Ollama's own ``/v1``,
many gateways): keys are matched to the OpenAI request's fields in any case and
the last one wins (``tests.fakes.go_json``), so what is recorded is what such a
provider would run. A script may also set answer headers, echo the credentials
it was sent in its error messages (as some providers do), or fail mid-stream.

For a manual run: ``python -m tests.fakes.openai_provider --port 8001 [--key KEY]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.go_json import as_struct

DEFAULT_MODELS = ("fake-chat", "fake-reasoner", "fake-embed")
PROVIDER_KEY = "sk-fake-provider-key"  # the bearer key the fake accepts unless told another
EMBEDDING_SIZE = 4


@dataclass
class Reply:
    """How one model answers; every field is optional."""

    content: str | None = None  # default: "You said: " + the last user message
    reasoning: str | None = None  # sent first, as reasoning_content
    tool_calls: list[dict] | None = None  # [{"name", "arguments" (a JSON string)}], sent in fragments
    finish_reason: str | None = None  # default: "tool_calls" with calls, else "stop"
    fragment_size: int = 5  # characters per piece of text or tool arguments
    rate_limited: int = 0  # answer 429 to the first N calls
    retry_after: str | None = "0"  # the 429's Retry-After header (None: no header)
    fail_status: int | None = None  # answer every call with this status
    fail_times: int | None = None  # ... only for the first N calls (None: always)
    fail_body: str | None = None  # raw error body (default: OpenAI's error shape)
    drop_after: int | None = None  # cut the connection after N stream chunks
    error_after: int | None = None  # send an error event instead of stream chunk N
    echo_credentials: bool = False  # error messages repeat the Authorization and OpenAI-* headers received
    headers: dict[str, str] = field(default_factory=dict)  # more headers on a successful answer
    first_byte_delay: float = 0.0  # seconds before the headers go out
    chunk_delay: float = 0.0  # seconds between stream chunks
    calls: int = field(default=0, repr=False)


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any
    at: float  # time.monotonic()


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


class FakeProvider:
    """An OpenAI-compatible server on 127.0.0.1 whose models answer as tests script them."""

    def __init__(self, key: str = PROVIDER_KEY, models: tuple[str, ...] = DEFAULT_MODELS):
        self.key = key
        self.url = ""
        self._default_models = models
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self, port: int = 0) -> FakeProvider:
        """Serve in a daemon thread on the port (0: any free one) and return self."""
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True, request_handler=_Handler)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget recordings and scripts; restore the default models."""
        self.models = list(self._default_models)
        self.requests: list[Recorded] = []
        self._replies: dict[str, Reply] = {}

    def script(self, model: str, **fields: Any) -> Reply:
        """Make ``model`` answer with Reply(**fields)."""
        self._replies[model] = Reply(**fields)
        return self._replies[model]

    def last(self, path: str) -> Recorded:
        """Return the last request recorded for ``path``."""
        for recorded in reversed(self.requests):
            if recorded.path == path:
                return recorded
        raise AssertionError(f"no request to {path} was recorded")

    def calls(self, path: str) -> list[Recorded]:
        return [recorded for recorded in self.requests if recorded.path == path]

    # Dispatch

    def _wsgi(self, environ: dict, start_response) -> Any:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        body = request.get_data()
        try:
            parsed = _as_request(request.path, json.loads(body)) if body else None
        except ValueError:
            parsed = None
        self.requests.append(Recorded(request.method, request.path,
                                      {k.lower(): v for k, v in request.headers.items()}, parsed, time.monotonic()))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        route = {("GET", "/v1/models"): self._models, ("POST", "/v1/chat/completions"): self._chat,
                 ("POST", "/v1/embeddings"): self._embeddings}.get((request.method, request.path))
        if route is None:
            return _error(404, f"no route {request.method} {request.path}", "invalid_request_error")
        return route(request, parsed if isinstance(parsed, dict) else {})

    def _models(self, request: Request, body: dict) -> Response:
        return _json({"object": "list", "data": [{"id": name, "object": "model", "created": 1700000000,
                                                  "owned_by": "fake"} for name in self.models]})

    def _fault(self, model: str, request: Request) -> tuple[Reply, Response | None]:
        """Count the call and return the scripted fault it meets, if any."""
        reply = self._replies.get(model, Reply())
        reply.calls += 1
        if model not in self.models:
            return reply, _error(404, f"The model `{model}` does not exist", "invalid_request_error",
                                 "model_not_found")
        if reply.calls <= reply.rate_limited:
            response = _error(429, "Rate limit reached, slow down", "rate_limit_exceeded")
            if reply.retry_after is not None:
                response.headers["Retry-After"] = reply.retry_after
            return reply, response
        if reply.fail_status and (reply.fail_times is None or reply.calls <= reply.fail_times):
            if reply.fail_body is not None:
                return reply, Response(reply.fail_body, reply.fail_status, content_type="text/plain")
            message = f"scripted failure {reply.fail_status}{_echo(request, reply)}"
            return reply, _error(reply.fail_status, message, "server_error")
        time.sleep(reply.first_byte_delay)
        return reply, None

    def _chat(self, request: Request, body: dict) -> Response:
        model = body.get("model", "")
        reply, fault = self._fault(model, request)
        if fault is not None:
            return fault
        deltas = list(_deltas(reply, _last_user_text(body.get("messages") or [])))
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        usage = {"prompt_tokens": _words(body.get("messages")), "completion_tokens": len(deltas),
                 "total_tokens": _words(body.get("messages")) + len(deltas)}
        if not body.get("stream"):
            return _json(_whole(model, deltas, finish, usage), headers=reply.headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream_events(model, deltas, finish, usage if include_usage else None)
        if reply.error_after is not None:
            message = f"scripted failure mid-stream{_echo(request, reply)}"
            events[reply.error_after:] = [{"error": {"message": message, "type": "server_error"}}]
        sock = request.environ["werkzeug.socket"]
        return Response(self._sse(events, reply, sock), 200, headers=reply.headers, content_type="text/event-stream")

    def _sse(self, events: list[dict], reply: Reply, sock: socket.socket) -> Iterator[bytes]:
        yield b": keep-alive comment, as OpenRouter sends\n\n"
        for index, event in enumerate(events):
            if index == reply.drop_after:
                sock.shutdown(socket.SHUT_RDWR)
                return
            if index:
                time.sleep(reply.chunk_delay)
            yield b"data: " + json.dumps(event).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _embeddings(self, request: Request, body: dict) -> Response:
        model = body.get("model", "")
        _, fault = self._fault(model, request)
        if fault is not None:
            return fault
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        size = body.get("dimensions") or EMBEDDING_SIZE
        data = [{"object": "embedding", "index": i, "embedding": [round(len(text) / (k + 1), 4) for k in range(size)]}
                for i, text in enumerate(inputs)]
        tokens = sum(len(text.split()) for text in inputs)
        return _json({"object": "list", "model": model, "data": data,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# The fields of OpenAI's request bodies (and of the extensions the proxy or OpenRouter send), which a
# provider written in Go decodes into struct fields, matching keys in any case.
_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content")
_CHAT_FIELDS = ("model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
                "temperature", "top_p", "n", "stop", "seed", "frequency_penalty", "presence_penalty", "logit_bias",
                "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "parallel_tool_calls", "user",
                "reasoning_effort", "top_k", "min_p", "enable_thinking", "thinking", "reasoning", "models", "route")
_EMBEDDINGS_FIELDS = ("model", "input", "dimensions", "encoding_format", "user")


def _as_request(path: str, value: Any) -> Any:
    """Return a parsed body as a Go provider reads it: keys matched to the endpoint's fields in any case."""
    if path == "/v1/embeddings":
        return as_struct(value, _EMBEDDINGS_FIELDS)
    if path != "/v1/chat/completions" or not isinstance(value, dict):
        return value
    body = as_struct(value, _CHAT_FIELDS, {"messages": _MESSAGE_FIELDS})
    if isinstance(body.get("stream_options"), dict):
        body["stream_options"] = as_struct(body["stream_options"], ("include_usage",))
    return body


def _deltas(reply: Reply, user_text: str) -> Iterator[dict]:
    """Yield the deltas of an answer: reasoning, text, then tool calls in argument fragments."""
    size = max(1, reply.fragment_size)
    for text, key in ((reply.reasoning or "", "reasoning_content"),
                      (reply.content if reply.content is not None else f"You said: {user_text}", "content")):
        for start in range(0, len(text), size):
            yield {key: text[start:start + size]}
    for index, call in enumerate(reply.tool_calls or []):
        yield {"tool_calls": [{"index": index, "id": f"call_fake{index}", "type": "function",
                               "function": {"name": call["name"], "arguments": ""}}]}
        arguments = call["arguments"]
        for start in range(0, len(arguments), size):
            yield {"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + size]}}]}


def _stream_events(model: str, deltas: list[dict], finish: str, usage: dict | None) -> list[dict]:
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    events += [{**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        events.append({**head, "choices": [], "usage": usage})
    return events


def _whole(model: str, deltas: list[dict], finish: str, usage: dict) -> dict:
    message: dict = {"role": "assistant", "content": "".join(d.get("content", "") for d in deltas)}
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    if reasoning:
        message["reasoning_content"] = reasoning
    calls: dict[int, dict] = {}
    for delta in deltas:
        for fragment in delta.get("tool_calls", []):
            call = calls.setdefault(fragment["index"], {"id": fragment.get("id"), "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
            call["function"]["name"] += fragment["function"].get("name", "")
            call["function"]["arguments"] += fragment["function"].get("arguments", "")
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def _words(messages: Any) -> int:
    return len(json.dumps(messages or []).split())


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, headers=headers, content_type="application/json")


def _echo(request: Request, reply: Reply) -> str:
    """Return what an echoing provider adds to its error message: the credentials it was sent."""
    if not reply.echo_credentials:
        return ""
    sent = [f"{name}: {request.headers[name]}" for name in ("Authorization", "OpenAI-Organization", "OpenAI-Project")
            if name in request.headers]
    return f" (you sent {'; '.join(sent)})"


def _error(status: int, message: str, kind: str, code: str | None = None) -> Response:
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def main(argv: list[str] | None = None) -> None:
    """Serve a fake provider until interrupted, for trying the gateway by hand."""
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible provider on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--key", default=PROVIDER_KEY, help="the bearer key clients must send")
    args = parser.parse_args(argv)
    fake = FakeProvider(args.key).start(args.port)
    print(f"Fake provider listening on {fake.base_url} (key {args.key}); Ctrl-C stops it.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
