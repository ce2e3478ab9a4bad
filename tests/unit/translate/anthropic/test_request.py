"""Table tests for the Anthropic Messages request -> Ollama /api/chat translation."""

from __future__ import annotations

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic.request import from_anthropic_messages
from tests.unit.translate.anthropic.helpers import PNG, USER_HI

WEATHER = {"name": "weather", "description": "Get the weather", "input_schema": {"type": "object"}}
OLLAMA_WEATHER = {"type": "function", "function": {
    "name": "weather", "description": "Get the weather", "parameters": {"type": "object"}}}
TIME = {"name": "time", "input_schema": {"type": "object"}}
OLLAMA_TIME = {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}


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

# Claude Code's mid-conversation system message (beta mid-conversation-system-2026-04-07).
ENVIRONMENT = {"role": "system", "content": "# Environment"}

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
    pytest.param(request(system="be brief", messages=[*USER_HI, ENVIRONMENT, {"role": "assistant", "content": "ok"}]),
                 chat([{"role": "system", "content": "be brief"}, *USER_HI, ENVIRONMENT,
                       {"role": "assistant", "content": "ok"}]), id="system message kept where it stands"),
    pytest.param(request(messages=[*USER_HI, {"role": "system", "content": [
        {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "two"}]}]),
        chat([*USER_HI, {"role": "system", "content": "one\n\ntwo"}]), id="system message of text blocks"),
    pytest.param(request(messages=[*USER_HI, {"role": "system", "content": []}]), chat(),
                 id="empty system message left out"),
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
    pytest.param(request(messages=[{"role": "tool", "content": "x"}]), "messages.0.role",
                 "'user', 'assistant' or 'system'", id="unknown role in messages"),
    pytest.param(request(messages=[*USER_HI, {"role": "system", "content": [{"type": "image"}]}]),
                 "messages.1.content.0", "only text blocks", id="image in a system message"),
    pytest.param(request(messages=[*USER_HI, {"role": "system", "content": 5}]), "messages.1.content",
                 "string or a list", id="system message not text"),
    pytest.param(request(messages=[*USER_HI, {"role": "system"}]), "messages.1.content", "string or a list",
                 id="system message without content"),
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
