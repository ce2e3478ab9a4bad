"""Table tests for the Anthropic Messages <-> Ollama /api/chat translation."""

from __future__ import annotations

import itertools

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic import (
    MessagesStreamConverter,
    count_tokens,
    from_anthropic_messages,
    to_anthropic_message,
)

PNG = "iVBORw0KGgo="
USER_HI = [{"role": "user", "content": "hi"}]
WEATHER = {"name": "weather", "description": "Get the weather", "input_schema": {"type": "object"}}
OLLAMA_WEATHER = {"type": "function", "function": {
    "name": "weather", "description": "Get the weather", "parameters": {"type": "object"}}}
TIME = {"name": "time", "input_schema": {"type": "object"}}
OLLAMA_TIME = {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}


def ids():
    """Return a deterministic ``new_id``: toolu_1, toolu_2, ..."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}{next(counter)}"


def request(**fields):
    """Return a minimal valid Anthropic request with ``fields`` set."""
    return {"model": "claude-x", "max_tokens": 100, "messages": USER_HI, **fields}


def chat(messages=None, options=None, **fields):
    """Return the Ollama body expected for ``request`` with the same changes."""
    return {"model": "claude-x", "messages": USER_HI if messages is None else messages, "stream": False,
            "options": {"num_predict": 100, **(options or {})}, **fields}


TOOL_HISTORY = [
    {"role": "user", "content": "weather in Paris and the time?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "12C"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": [{"type": "text", "text": "noon"}]},
        {"type": "text", "text": "thanks"},
    ]},
]
OLLAMA_TOOL_HISTORY = [
    {"role": "user", "content": "weather in Paris and the time?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_a", "function": {"name": "weather", "arguments": {"city": "Paris"}}},
        {"id": "toolu_b", "function": {"name": "time", "arguments": {}}},
    ]},
    {"role": "tool", "content": "12C", "tool_call_id": "toolu_a", "tool_name": "weather"},
    {"role": "tool", "content": "noon", "tool_call_id": "toolu_b", "tool_name": "time"},
    {"role": "user", "content": "thanks"},
]
CALL_A = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {}}]}
OLLAMA_CALL_A = {"role": "assistant", "content": "",
                 "tool_calls": [{"id": "toolu_a", "function": {"name": "weather", "arguments": {}}}]}

REQUEST_CASES = [
    pytest.param(request(), chat(), id="plain string message"),
    pytest.param(request(stream=True), chat(stream=True), id="stream copied"),
    pytest.param(request(system="be brief"),
                 chat([{"role": "system", "content": "be brief"}, *USER_HI]), id="system string"),
    pytest.param(request(system=[{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
                                 {"type": "text", "text": "two"}]),
                 chat([{"role": "system", "content": "one\n\ntwo"}, *USER_HI]), id="system blocks joined"),
    pytest.param(request(system=""), chat(), id="empty system dropped"),
    pytest.param(request(system=[]), chat(), id="empty system list dropped"),
    pytest.param(request(messages=[{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": ""}, {"type": "text", "text": "b"}]}]),
        chat([{"role": "user", "content": "a\n\nb"}]), id="text blocks joined, empty skipped"),
    pytest.param(request(messages=[{"role": "user", "content": []}]),
                 chat([{"role": "user", "content": ""}]), id="empty block list kept as empty message"),
    pytest.param(request(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "what is this?"}]}]),
        chat([{"role": "user", "content": "what is this?", "images": [PNG]}]), id="image base64"),
    pytest.param(request(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]}]),
        chat([{"role": "user", "content": "", "images": ["https://example.com/cat.png"]}]),
        id="image url kept for the guarded fetch"),
    pytest.param(request(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": f"data:image/png;base64,{PNG}"}}]}]),
        chat([{"role": "user", "content": "", "images": [PNG]}]), id="image data URI decoded"),
    pytest.param(request(messages=TOOL_HISTORY), chat(OLLAMA_TOOL_HISTORY),
                 id="tool_use and tool_result, results first"),
    pytest.param(request(messages=[CALL_A, {"role": "user", "content": [
        {"type": "text", "text": "before"},
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "12C"},
        {"type": "text", "text": "after"}]}]),
        chat([OLLAMA_CALL_A, {"role": "user", "content": "before"},
              {"role": "tool", "content": "12C", "tool_call_id": "toolu_a", "tool_name": "weather"},
              {"role": "user", "content": "after"}]), id="text around a tool_result keeps its order"),
    pytest.param(request(messages=[CALL_A, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_a", "is_error": True, "content": "no such city"}]}]),
        chat([OLLAMA_CALL_A, {"role": "tool", "content": "Error: no such city", "tool_call_id": "toolu_a",
                              "tool_name": "weather"}]), id="tool_result is_error"),
    pytest.param(request(messages=[CALL_A, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": [
            {"type": "text", "text": "map:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]),
        chat([OLLAMA_CALL_A, {"role": "tool", "content": "map:", "tool_call_id": "toolu_a", "tool_name": "weather",
                              "images": [PNG]}]), id="tool_result with text and image"),
    pytest.param(request(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_gone"}]}]),
        chat([{"role": "tool", "content": "", "tool_call_id": "toolu_gone"}]),
        id="tool_result without its tool_use: no tool_name"),
    pytest.param(request(messages=[*USER_HI, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "hello"}]}, {"role": "user", "content": "and?"}]),
        chat([*USER_HI, {"role": "assistant", "content": "hello", "thinking": "hmm"},
              {"role": "user", "content": "and?"}]), id="thinking kept, redacted dropped"),
    pytest.param(request(messages=[*USER_HI, {"role": "assistant", "content": "Sure: {"}]),
                 chat([*USER_HI, {"role": "assistant", "content": "Sure: {"}]), id="assistant prefill"),
    pytest.param(request(tools=[WEATHER, {**TIME, "type": "custom"}]),
                 chat(tools=[OLLAMA_WEATHER, OLLAMA_TIME]), id="tools"),
    pytest.param(request(tools=[]), chat(), id="empty tools left out"),
    pytest.param(request(tools=[WEATHER], tool_choice={"type": "auto"}), chat(tools=[OLLAMA_WEATHER]),
                 id="tool_choice auto"),
    pytest.param(request(tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True}),
                 chat(tools=[OLLAMA_WEATHER]), id="tool_choice any offers all, parallel flag ignored"),
    pytest.param(request(tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "time"}),
                 chat(tools=[OLLAMA_TIME]), id="tool_choice tool offers only that tool"),
    pytest.param(request(tools=[WEATHER], tool_choice={"type": "none"}), chat(), id="tool_choice none"),
    pytest.param(request(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END", "\n\n"]),
                 chat(options={"temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop": ["END", "\n\n"]}),
                 id="sampling options"),
    pytest.param(request(temperature=None, stop_sequences=[]), chat(), id="null and empty options left out"),
    pytest.param(request(thinking={"type": "enabled", "budget_tokens": 2048}), chat(think=True),
                 id="thinking enabled, budget not honoured"),
    pytest.param(request(thinking={"type": "adaptive"}), chat(think=True), id="thinking adaptive"),
    pytest.param(request(thinking={"type": "disabled"}), chat(think=False), id="thinking disabled"),
    pytest.param(request(thinking={"type": "adaptive"}, output_config={"effort": "high"}), chat(think="high"),
                 id="effort sets the thinking level"),
    pytest.param(request(thinking={"type": "enabled", "budget_tokens": 2048}, output_config={"effort": "xhigh"}),
                 chat(think="high"), id="effort xhigh is Ollama's high"),
    pytest.param(request(thinking={"type": "between_tools"}), chat(think=True), id="thinking between_tools"),
    pytest.param(request(output_config={"effort": "low"}), chat(), id="effort alone does not turn thinking on"),
    pytest.param(request(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}),
                 chat(format={"type": "object"}), id="structured output"),
    pytest.param(request(output_format={"type": "json_schema", "schema": {"type": "object"}}),
                 chat(format={"type": "object"}), id="structured output, beta field"),
    pytest.param(request(metadata={"user_id": "u1"}, service_tier="auto", container="c1",
                         mcp_servers=[{"type": "url", "url": "https://mcp.example"}],
                         cache_control={"type": "ephemeral"}, inference_geo="us", speed="fast"),
                 chat(), id="anthropic-only fields dropped"),
    pytest.param(request(some_future_field={"x": 1}), chat(some_future_field={"x": 1}),
                 id="unknown field copied"),
    pytest.param(request(keep_alive="10m", num_ctx=8192, options={"seed": 7, "num_predict": 50}, temperature=1),
                 chat(keep_alive="10m", options={"seed": 7, "num_predict": 50, "temperature": 1, "num_ctx": 8192}),
                 id="ollama extras: options win, num_ctx into options"),
    pytest.param(request(thinking={"type": "enabled", "budget_tokens": 1024}, think="low", format="json",
                         output_config={"format": {"type": "json_schema", "schema": {}}}),
                 chat(think="low", format="json"), id="ollama think and format win"),
]


@pytest.mark.parametrize(("body", "expected"), REQUEST_CASES)
def test_from_anthropic_messages(body, expected):
    assert from_anthropic_messages(body) == expected


def user(*blocks):
    """Return a request whose one user message holds ``blocks``."""
    return request(messages=[{"role": "user", "content": list(blocks)}])


def image(source):
    return {"type": "image", "source": source}


INVALID_CASES = [
    pytest.param([], None, "JSON object", id="body not an object"),
    pytest.param({"max_tokens": 1, "messages": USER_HI}, "model", "model", id="model missing"),
    pytest.param({"model": "m", "messages": USER_HI}, "max_tokens", "max_tokens: field required",
                 id="max_tokens missing"),
    pytest.param(request(max_tokens=0), "max_tokens", "positive integer", id="max_tokens zero"),
    pytest.param(request(max_tokens="100"), "max_tokens", "positive integer", id="max_tokens string"),
    pytest.param(request(max_tokens=True), "max_tokens", "positive integer", id="max_tokens boolean"),
    pytest.param(request(messages=[]), "messages", "non-empty list", id="messages empty"),
    pytest.param(request(messages="hi"), "messages", "non-empty list", id="messages not a list"),
    pytest.param(request(messages=[{"role": "system", "content": "x"}]), "messages.0.role", "'user' or",
                 id="system role in messages"),
    pytest.param(request(messages=[{"role": "user", "content": 3}]), "messages.0.content", "string or a list",
                 id="content not string or list"),
    pytest.param(user("hi"), "messages.0.content.0", "content block with a type", id="block not an object"),
    pytest.param(user({"type": "document", "source": {"type": "text", "data": "x"}}), "messages.0.content.0",
                 "document blocks are not supported", id="document refused"),
    pytest.param(user({"type": "search_result"}), "messages.0.content.0", "'search_result' is not supported",
                 id="unknown block refused"),
    pytest.param(user({"type": "text", "text": 5}), "messages.0.content.0.text", "must be a string",
                 id="text not a string"),
    pytest.param(user(image({"type": "base64", "media_type": "image/png", "data": "not base64!"})),
                 "messages.0.content.0.source.data", "not valid base64", id="bad base64"),
    pytest.param(user(image({"type": "base64", "media_type": "application/pdf", "data": PNG})),
                 "messages.0.content.0.source.media_type", "image type", id="non-image media type"),
    pytest.param(user(image({"type": "file", "file_id": "file_1"})), "messages.0.content.0.source.type",
                 "'file' is not supported", id="file source refused"),
    pytest.param(user(image({"type": "url", "url": "ftp://x/y.png"})), "messages.0.content.0.source.url",
                 "http(s) URL", id="url not http"),
    pytest.param(user({"type": "image"}), "messages.0.content.0.source", "must be an object",
                 id="image without source"),
    pytest.param(user({"type": "tool_use", "id": "t", "name": "n", "input": {}}), "messages.0.content.0",
                 "belong in assistant messages", id="tool_use in user message"),
    pytest.param(request(messages=[{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]),
                 "messages.0.content.0", "belong in user messages", id="tool_result in assistant message"),
    pytest.param(request(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "n"}]}]),
                 "messages.0.content.0.id", "needs an id", id="tool_use without id"),
    pytest.param(request(messages=[{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "n", "input": "{}"}]}]),
        "messages.0.content.0.input", "must be an object", id="tool_use input not an object"),
    pytest.param(user({"type": "tool_result", "content": "x"}), "messages.0.content.0.tool_use_id",
                 "needs a tool_use_id", id="tool_result without tool_use_id"),
    pytest.param(user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}),
                 "messages.0.content.0.content.0", "not supported in tool_result", id="document in tool_result"),
    pytest.param(request(system=[{"type": "image"}]), "system.0", "only text blocks", id="image in system"),
    pytest.param(request(system=5), "system", "string or a list", id="system not text"),
    pytest.param(request(tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}]), "tools",
                 "not supported: web_search (web_search_20250305)", id="server tool refused"),
    pytest.param(request(tools=[{"name": "x"}]), "tools.0.input_schema", "JSON schema", id="tool without schema"),
    pytest.param(request(tools={"name": "x"}), "tools", "list of objects", id="tools not a list"),
    pytest.param(request(tools=[WEATHER], tool_choice={"type": "tool", "name": "time"}), "tool_choice.name",
                 "not in tools", id="tool_choice names an unknown tool"),
    pytest.param(request(tool_choice={"type": "required"}), "tool_choice.type", "auto, any, tool or none",
                 id="tool_choice bad type"),
    pytest.param(request(tool_choice="auto"), "tool_choice", "must be an object", id="tool_choice string"),
    pytest.param(request(thinking={"type": "on"}), "thinking.type", "enabled, adaptive, between_tools or disabled",
                 id="thinking bad type"),
    pytest.param(request(temperature="hot"), "temperature", "a number", id="temperature not a number"),
    pytest.param(request(top_k=1.5), "top_k", "an integer", id="top_k not an integer"),
    pytest.param(request(stop_sequences="END"), "stop_sequences", "list of strings", id="stop_sequences string"),
    pytest.param(request(stream="yes"), "stream", "boolean", id="stream not a boolean"),
    pytest.param(request(options=[1]), "options", "must be an object", id="options not an object"),
    pytest.param(request(output_config={"format": {"type": "json"}}), "output_config.format", "json_schema",
                 id="output format not a schema"),
]


@pytest.mark.parametrize(("body", "param", "message"), INVALID_CASES)
def test_from_anthropic_messages_refuses(body, param, message):
    with pytest.raises(InvalidRequest) as caught:
        from_anthropic_messages(body)
    assert caught.value.param == param
    assert message in caught.value.message


def message(content, stop_reason="end_turn", input_tokens=10, output_tokens=5):
    """Return the Anthropic Message expected from ``RESPONSE_CASES``."""
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


METRICS = {"done": True, "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5}

RESPONSE_CASES = [
    pytest.param({"message": {"role": "assistant", "content": "Hello"}, **METRICS},
                 message([{"type": "text", "text": "Hello"}]), id="text"),
    pytest.param({"message": {"role": "assistant", "content": "Hi", "thinking": "greet"}, **METRICS},
                 message([{"type": "thinking", "thinking": "greet", "signature": ""},
                          {"type": "text", "text": "Hi"}]), id="thinking then text"),
    pytest.param({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
        {"id": "call_9", "function": {"name": "time", "arguments": '{"tz": "UTC"}'}}]}, **METRICS},
        message([{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                 {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {"tz": "UTC"}}], "tool_use"),
        id="two tool calls, string arguments parsed, empty text left out"),
    pytest.param({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "x", "arguments": "not json"}}]}, **METRICS},
        message([{"type": "tool_use", "id": "toolu_1", "name": "x", "input": {"_raw_arguments": "not json"}}],
                "tool_use"), id="unparsable arguments kept"),
    pytest.param({"message": {"role": "assistant", "content": "Once upon"}, **METRICS, "done_reason": "length"},
                 message([{"type": "text", "text": "Once upon"}], "max_tokens"), id="length is max_tokens"),
    pytest.param({"message": {"role": "assistant", "content": ""}, "done": True},
                 message([], input_tokens=0, output_tokens=0), id="empty response without metrics"),
]


@pytest.mark.parametrize(("ollama_resp", "expected"), RESPONSE_CASES)
def test_to_anthropic_message(ollama_resp, expected):
    assert to_anthropic_message(ollama_resp, message_id="msg_1", model="claude-x", new_id=ids()) == expected


# Expected stream events, spelled out once.
def start(input_tokens=0):
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


def block_start(index, block):
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index, **fields):
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields})


def block_stop(index):
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def thinking_block(index, *texts):
    return [block_start(index, {"type": "thinking", "thinking": "", "signature": ""}),
            *[delta(index, type="thinking_delta", thinking=t) for t in texts],
            delta(index, type="signature_delta", signature=""), block_stop(index)]


def text_block(index, *texts):
    return [block_start(index, {"type": "text", "text": ""}),
            *[delta(index, type="text_delta", text=t) for t in texts], block_stop(index)]


def tool_block(index, tool_id, name, partial_json):
    return [block_start(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}}),
            delta(index, type="input_json_delta", partial_json=partial_json), block_stop(index)]


def end(stop_reason="end_turn", input_tokens=10, output_tokens=5):
    return [("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                               "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}),
            ("message_stop", {"type": "message_stop"})]


def chunk(content="", thinking=None, tool_calls=None):
    message = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"model": "qwen3", "message": message, "done": False}


def done(content="", done_reason="stop", **fields):
    return {"model": "qwen3", "message": {"role": "assistant", "content": content, **fields}, "done": True,
            "done_reason": done_reason, "prompt_eval_count": 10, "eval_count": 5}


WEATHER_CALL = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
TIME_CALL = {"function": {"name": "time", "arguments": {}}}
PING = ("ping", {"type": "ping"})

# Steps: an Ollama chunk (dict), "ping", or ("error", message).
STREAM_CASES = [
    pytest.param([chunk("Hel"), chunk("lo"), done()],
                 [start(), *text_block(0, "Hel", "lo"), *end()], id="text"),
    pytest.param([chunk(thinking="Let me"), chunk(thinking=" see"), chunk("Hi"), done()],
                 [start(), *thinking_block(0, "Let me", " see"), *text_block(1, "Hi"), *end()],
                 id="thinking then text"),
    pytest.param([chunk("Checking."), done(tool_calls=[WEATHER_CALL])],
                 [start(), *text_block(0, "Checking."), *tool_block(1, "toolu_1", "weather", '{"city": "Paris"}'),
                  *end("tool_use")], id="tool call in the done chunk"),
    pytest.param([chunk(tool_calls=[WEATHER_CALL, TIME_CALL]), done()],
                 [start(), *tool_block(0, "toolu_1", "weather", '{"city": "Paris"}'),
                  *tool_block(1, "toolu_2", "time", "{}"), *end("tool_use")], id="two parallel tool calls"),
    pytest.param([chunk(thinking="plan"), chunk(tool_calls=[TIME_CALL]), chunk("More"), done()],
                 [start(), *thinking_block(0, "plan"), *tool_block(1, "toolu_1", "time", "{}"),
                  *text_block(2, "More"), *end("tool_use")], id="thinking, tool call, text"),
    pytest.param([done()], [start(10), *end()], id="empty completion"),
    pytest.param([chunk("Hi"), {"model": "qwen3", "done": True, "done_reason": "stop", "prompt_eval_count": 10,
                                "eval_count": 5, "total_duration": 123}],
                 [start(), *text_block(0, "Hi"), *end()], id="metrics-only trailer"),
    pytest.param([chunk("Once"), done(done_reason="length")],
                 [start(), *text_block(0, "Once"), *end("max_tokens")], id="length is max_tokens"),
    pytest.param([{**chunk("Hi"), "prompt_eval_count": 7}, done()],
                 [start(7), *text_block(0, "Hi"), *end()], id="input tokens known at the start"),
    pytest.param(["ping", "ping", chunk("Hi"), done(), "ping"],
                 [start(), PING, PING, *text_block(0, "Hi"), *end()], id="pings while loading, none after the end"),
    pytest.param([chunk("Hi"), {"error": "model runner crashed"}, chunk("more"), done()],
                 [start(), *text_block(0, "Hi")[:2],
                  ("error", {"type": "error", "error": {"type": "api_error", "message": "model runner crashed"}})],
                 id="error chunk mid-stream ends the stream"),
    pytest.param([chunk("Hi"), ("error", "upstream timed out"), ("error", "again")],
                 [start(), *text_block(0, "Hi")[:2],
                  ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream timed out"}})],
                 id="caller reports a failure once"),
    pytest.param([{"error": "model not found"}, chunk("Hi")],
                 [("error", {"type": "error", "error": {"type": "api_error", "message": "model not found"}})],
                 id="error first: no message_start"),
    pytest.param([done(), ("error", "late")], [start(10), *end()], id="no error after the end"),
]


def run(steps):
    """Feed ``steps`` to a fresh converter and return every event it produced."""
    converter = MessagesStreamConverter("msg_1", "claude-x", new_id=ids())
    events = []
    for step in steps:
        if step == "ping":
            events += converter.ping()
        elif isinstance(step, tuple):
            events += converter.error(step[1])
        else:
            events += converter.process(step)
    return events


@pytest.mark.parametrize(("steps", "expected"), STREAM_CASES)
def test_stream(steps, expected):
    assert run(steps) == expected


COUNT_CASES = [
    pytest.param({"messages": [{"role": "user", "content": "abcdefgh"}]}, 2 + 4, id="one short message"),
    pytest.param({"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 40}]}, 20 + 8,
                 id="system counts as a message"),
    pytest.param({"system": [{"type": "text", "text": "abcd"}], "messages": [{"role": "user", "content": [
        {"type": "text", "text": "abcd"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG * 100}}]}]},
        2 + 8 + 1600, id="image at a flat cost, not its base64 length"),
    pytest.param({"messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "abcd"},
                                          {"type": "redacted_thinking", "data": "z" * 400},
                                          {"type": "tool_use", "id": "t", "name": "ab", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "abcd"}]}]},
        5 + 8, id="thinking, tool_use and tool_result; redacted not counted"),
    pytest.param({"messages": USER_HI, "tools": [{"name": "t", "input_schema": {}}]}, 9 + 4,
                 id="tool definitions as JSON"),
    pytest.param({"messages": []}, 0, id="nothing"),
]


@pytest.mark.parametrize(("body", "expected"), COUNT_CASES)
def test_count_tokens(body, expected):
    assert count_tokens(body) == expected


@pytest.mark.parametrize(("body", "param"), [
    pytest.param({"messages": "hi"}, "messages", id="messages not a list"),
    pytest.param({"messages": [], "tools": {}}, "tools", id="tools not a list"),
])
def test_count_tokens_refuses(body, param):
    with pytest.raises(InvalidRequest) as caught:
        count_tokens(body)
    assert caught.value.param == param
