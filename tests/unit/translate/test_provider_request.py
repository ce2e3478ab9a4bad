import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.provider_request import (
    image_data_uri,
    thinking_fields,
    to_provider_chat,
    to_provider_embeddings,
    to_provider_generate,
)
from tests.fakes.go_json import as_struct

STREAM = {"stream": True, "stream_options": {"include_usage": True}}
PNG = "iVBORw0KGgoAAAANSUhEUg=="
JPEG = "/9j/4AAQSkZJRg=="
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}

CHATS = {
    "plain text, stream forced on, keep_alive dropped": (
        {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "stream": False,
         "keep_alive": "5m"},
        {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], **STREAM}),
    "images become image_url parts with data URIs": (
        {"model": "m", "messages": [{"role": "user", "content": "what is this?", "images": [PNG, JPEG]}]},
        {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}}]}], **STREAM}),
    "tool calls get ids and JSON arguments; results find their call by name": (
        {"model": "m", "tools": [TOOL], "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "thinking": "two cities",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                            {"function": {"name": "get_time", "arguments": {"tz": "CET"}}}]},
            {"role": "tool", "tool_name": "get_time", "content": "12:00"},
            {"role": "tool", "tool_name": "get_weather", "content": "sunny"}]},
        {"model": "m", "tools": [TOOL], "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "reasoning_content": "two cities",
             "tool_calls": [
                 {"id": "call_0", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                 {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}}]},
            {"role": "tool", "content": "12:00", "tool_call_id": "call_1"},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_0"}], **STREAM}),
    "tool results without names are answered in order; ids the client gave are kept": (
        {"model": "m", "messages": [
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "abc", "function": {"name": "f", "arguments": {}}},
                {"function": {"name": "f", "arguments": {}}}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]},
        {"model": "m", "messages": [
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "abc", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "1", "tool_call_id": "abc"},
            {"role": "tool", "content": "2", "tool_call_id": "call_1"}], **STREAM}),
    "format json, options mapped, unknown fields passed through": (
        {"model": "m", "messages": [], "format": "json", "user": "u1", "provider_extra": {"a": 1},
         "options": {"num_predict": 100, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["\n"],
                     "frequency_penalty": 0.1, "presence_penalty": 0.3, "top_k": 40, "num_ctx": 8192,
                     "num_gpu": 1}},
        {"model": "m", "messages": [], "user": "u1", "provider_extra": {"a": 1},
         "response_format": {"type": "json_object"}, "temperature": 0.2, "top_p": 0.9, "seed": 7,
         "frequency_penalty": 0.1, "presence_penalty": 0.3, "top_k": 40, "max_tokens": 100, "stop": ["\n"],
         **STREAM}),
    "format schema, num_predict -1 means no limit": (
        {"model": "m", "messages": [], "format": {"type": "object"}, "options": {"num_predict": -1}},
        {"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {
            "name": "response", "schema": {"type": "object"}}}, **STREAM}),
}


@pytest.mark.parametrize("ollama_body, expected", list(CHATS.values()), ids=list(CHATS))
def test_to_provider_chat(ollama_body, expected):
    assert to_provider_chat(ollama_body) == expected


THINKING = {
    "enable_thinking on": (True, "enable_thinking", {"enable_thinking": True}),
    "enable_thinking off": (False, "enable_thinking", {"enable_thinking": False}),
    "enable_thinking level": ("high", "enable_thinking", {"enable_thinking": True}),
    "thinking_type on": (True, "thinking_type", {"thinking": {"type": "enabled"}}),
    "thinking_type off": (False, "thinking_type", {"thinking": {"type": "disabled"}}),
    "reasoning level": ("low", "reasoning", {"reasoning": {"effort": "low"}}),
    "reasoning on": (True, "reasoning", {"reasoning": {"effort": "medium"}}),
    "reasoning off": (False, "reasoning", {"reasoning": {"enabled": False}}),
    "reasoning_effort level": ("high", "reasoning_effort", {"reasoning_effort": "high"}),
    "reasoning_effort off": (False, "reasoning_effort", {"reasoning_effort": "minimal"}),
    "no switch": (True, None, {}),
}


@pytest.mark.parametrize("think, switch, expected", list(THINKING.values()), ids=list(THINKING))
def test_thinking_fields(think, switch, expected):
    assert thinking_fields(think, switch) == expected


def test_think_goes_through_the_presets_switch():
    body = to_provider_chat({"model": "qwen3", "messages": [], "think": False}, "enable_thinking")
    assert body["enable_thinking"] is False and "think" not in body


GENERATES = {
    "system and prompt become messages": (
        {"model": "m", "system": "be brief", "prompt": "hi", "options": {"num_predict": 5}, "raw": False},
        {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
         "max_tokens": 5, **STREAM}),
    "images go on the user message": (
        {"model": "m", "prompt": "see", "images": [PNG], "context": []},
        {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}], **STREAM}),
}


@pytest.mark.parametrize("ollama_body, expected", list(GENERATES.values()), ids=list(GENERATES))
def test_to_provider_generate(ollama_body, expected):
    assert to_provider_generate(ollama_body) == expected


@pytest.mark.parametrize("field, value", [("raw", True), ("suffix", "}"), ("context", [1, 2]),
                                          ("template", "{{ .Prompt }}")])
def test_generate_refuses_what_a_chat_endpoint_cannot_do(field, value):
    with pytest.raises(InvalidRequest, match=field) as caught:
        to_provider_generate({"model": "m", "prompt": "x", field: value})
    assert caught.value.param == field


@pytest.mark.parametrize("body, expected", [
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.name"),
    ({"model": "m", "messages": [], "format": "yaml"}, "format"),
    ({"model": "m", "messages": [], "options": []}, "options"),
])
def test_chat_refusals_name_the_field(body, expected):
    with pytest.raises(InvalidRequest) as caught:
        to_provider_chat(body)
    assert caught.value.param == expected


CASE_VARIANTS = {
    "stream_options off in another case, after the unknown lower-case one": (
        {"model": "m", "messages": [], "stream_options": {"include_usage": False},
         "STREAM_OPTIONS": {"include_usage": False}}, {"stream": True, "stream_options": {"include_usage": True}}),
    "a model in another case": ({"model": "m", "messages": [], "MODEL": "expensive"}, {"model": "m"}),
    "max_tokens in another case next to options.num_predict": (
        {"model": "m", "messages": [], "options": {"num_predict": 8}, "Max_Tokens": 100000}, {"max_tokens": 8}),
    "Ollama's own fields in another case are dropped": (
        {"model": "m", "messages": [], "Keep_Alive": "1h", "Stream": False}, {"stream": True}),
}


@pytest.mark.parametrize("ollama_body, read", list(CASE_VARIANTS.values()), ids=list(CASE_VARIANTS))
def test_a_field_the_translation_writes_is_the_only_key_a_go_provider_reads_as_it(ollama_body, read):
    sent = to_provider_chat(ollama_body)
    assert {name: sent[name] for name in read} == read
    decoded = as_struct(sent, ("model", "messages", "stream", "stream_options", "max_tokens", "keep_alive"))
    assert decoded == sent  # no other key that a Go provider would read as one of its fields


@pytest.mark.parametrize("translate, body, param", [
    (to_provider_chat, {"model": "m", "messages": [], "models": ["m", "expensive"]}, "models"),
    (to_provider_chat, {"model": "m", "messages": [], "Route": "fallback"}, "Route"),
    (to_provider_generate, {"model": "m", "prompt": "x", "models": ["expensive"]}, "models"),
    (to_provider_embeddings, {"model": "e", "input": "x", "MODELS": ["expensive"]}, "MODELS"),
])
def test_fields_that_pick_another_model_are_refused(translate, body, param):
    with pytest.raises(InvalidRequest) as caught:
        translate(body)
    assert caught.value.param == param and param in caught.value.message


EMBEDS = {
    "embed, one string": ({"model": "e", "input": "hi", "truncate": True, "keep_alive": 0},
                          {"model": "e", "input": "hi", "encoding_format": "float"}),
    "embed, a list and dimensions": ({"model": "e", "input": ["a", "b"], "dimensions": 256, "options": {}},
                                     {"model": "e", "input": ["a", "b"], "dimensions": 256,
                                      "encoding_format": "float"}),
    "embeddings, prompt": ({"model": "e", "prompt": "hi", "user": "u"},
                           {"model": "e", "input": "hi", "user": "u", "encoding_format": "float"}),
}


@pytest.mark.parametrize("ollama_body, expected", list(EMBEDS.values()), ids=list(EMBEDS))
def test_to_provider_embeddings(ollama_body, expected):
    assert to_provider_embeddings(ollama_body) == expected


@pytest.mark.parametrize("image, expected", [
    ("R0lGODlhAQABAAAAACw=", "data:image/gif;base64,R0lGODlhAQABAAAAACw="),
    ("UklGRiQAAABXRUJQ", "data:image/webp;base64,UklGRiQAAABXRUJQ"),
    ("AAAA", "data:image/png;base64,AAAA"),
    ("data:image/jpeg;base64,AAAA", "data:image/jpeg;base64,AAAA"),
])
def test_image_data_uri(image, expected):
    assert image_data_uri(image) == expected
