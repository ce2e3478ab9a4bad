"""Table tests for OpenAI chat requests -> Ollama /api/chat bodies."""

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_chat import from_openai_chat

PNG = "iVBORw0KGgo="
USER = {"role": "user", "content": "hi"}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
TIME = {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}


def chat(**fields):
    return {"model": "m", "messages": [USER], **fields}


def ollama(**fields):
    return {"model": "m", "messages": [USER], **fields, "stream": fields.get("stream", False)}


MESSAGE_CASES = [
    pytest.param(
        [{"role": "system", "content": "be brief"}, {"role": "developer", "content": "no markdown"}, USER],
        [{"role": "system", "content": "be brief"}, {"role": "system", "content": "no markdown"}, USER],
        id="system-and-developer-become-system"),
    pytest.param(
        [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}],
        [{"role": "user", "content": "one\ntwo"}],
        id="text-parts-joined"),
    pytest.param(
        [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": f"data:image/png;base64,{PNG}"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}]}],
        [{"role": "user", "content": "what is this?", "images": [PNG, "https://example.com/cat.png"]}],
        id="image-parts-string-and-object"),
    pytest.param(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
          "images": ["QUJD"]}],
        [{"role": "user", "content": "", "images": ["QUJD", PNG]}],
        id="image-parts-after-native-images"),
    pytest.param(
        [USER, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
         {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
         {"role": "tool", "tool_call_id": "call_1", "content": "rain"}],
        [USER, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}},
            {"id": "call_2", "function": {"name": "time", "arguments": {}}}]},
         {"role": "tool", "tool_call_id": "call_2", "content": "noon", "tool_name": "time"},
         {"role": "tool", "tool_call_id": "call_1", "content": "rain", "tool_name": "weather"}],
        id="tool-calls-and-results-by-id"),
    pytest.param(
        [{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "old", "arguments": "{}"}}]},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "a", "function": {"name": "new", "arguments": {"already": "decoded"}}}]},
         {"role": "tool", "tool_call_id": "a", "content": "x"},
         {"role": "tool", "tool_call_id": "unknown", "content": "y"},
         {"role": "tool", "tool_call_id": "a", "name": "explicit", "content": "z"}],
        [{"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "function": {"name": "old", "arguments": {}}}]},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "a", "function": {"name": "new", "arguments": {"already": "decoded"}}}]},
         {"role": "tool", "tool_call_id": "a", "content": "x", "tool_name": "new"},
         {"role": "tool", "tool_call_id": "unknown", "content": "y"},
         {"role": "tool", "tool_call_id": "a", "content": "z", "tool_name": "explicit"}],
        id="tool-results-latest-id-wins-name-overrides"),
    pytest.param(
        [{"role": "function", "name": "weather", "content": "rain"}],
        [{"role": "tool", "content": "rain", "tool_name": "weather"}],
        id="legacy-function-role"),
    pytest.param(
        [{"role": "assistant", "content": "4", "reasoning_content": "2+2"},
         {"role": "assistant", "content": "5", "reasoning": "2+3"}],
        [{"role": "assistant", "content": "4", "thinking": "2+2"},
         {"role": "assistant", "content": "5", "thinking": "2+3"}],
        id="assistant-reasoning-becomes-thinking"),
    pytest.param(
        [{"role": "user", "content": "hi", "name": "ann", "x_custom": {"k": 1}},
         {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}], "refusal": "I can't."}],
        [{"role": "user", "content": "hi", "name": "ann", "x_custom": {"k": 1}},
         {"role": "assistant", "content": "I can't.", "refusal": "I can't."}],
        id="unknown-message-fields-kept"),
    pytest.param(
        [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "42"}]}],
        [{"role": "tool", "tool_call_id": "c", "content": "42"}],
        id="tool-content-parts"),
]


@pytest.mark.parametrize("messages, expected", MESSAGE_CASES)
def test_messages(messages, expected):
    assert from_openai_chat({"model": "m", "messages": messages})["messages"] == expected


BODY_CASES = [
    pytest.param(chat(), ollama(), id="minimal-no-invented-defaults"),
    pytest.param(chat(stream=True), ollama(stream=True), id="stream-copied"),
    pytest.param(
        chat(temperature=0.2, top_p=0.9, seed=7, frequency_penalty=0.5, presence_penalty=-0.5, max_tokens=64),
        ollama(options={"temperature": 0.2, "top_p": 0.9, "frequency_penalty": 0.5, "presence_penalty": -0.5,
                        "seed": 7, "num_predict": 64}),
        id="sampling-options"),
    pytest.param(chat(max_tokens=10, max_completion_tokens=20), ollama(options={"num_predict": 20}),
                 id="max-completion-tokens-wins"),
    pytest.param(chat(stop="END"), ollama(options={"stop": ["END"]}), id="stop-string"),
    pytest.param(chat(stop=["a", "b"]), ollama(options={"stop": ["a", "b"]}), id="stop-list"),
    pytest.param(chat(temperature=None, stop=None, user=None), ollama(), id="nulls-mean-unset"),
    pytest.param(
        chat(temperature=0.2, num_ctx=8192, options={"temperature": 0.9, "top_k": 20}),
        ollama(options={"temperature": 0.9, "num_ctx": 8192, "top_k": 20}),
        id="explicit-options-win"),
    pytest.param(chat(response_format={"type": "text"}), ollama(), id="format-text"),
    pytest.param(chat(response_format={"type": "json_object"}), ollama(format="json"), id="format-json-object"),
    pytest.param(
        chat(response_format={"type": "json_schema",
                              "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True}}),
        ollama(format={"type": "object"}), id="format-json-schema"),
    pytest.param(chat(response_format={"type": "json_schema", "json_schema": {"name": "a"}}),
                 ollama(format="json"), id="format-json-schema-without-schema"),
    pytest.param(chat(format="json", response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
                 ollama(format="json"), id="native-format-wins"),
    pytest.param(chat(reasoning_effort="none"), ollama(think=False), id="effort-none"),
    pytest.param(chat(reasoning_effort="minimal"), ollama(think="low"), id="effort-minimal"),
    pytest.param(chat(reasoning_effort="low"), ollama(think="low"), id="effort-low"),
    pytest.param(chat(reasoning_effort="medium"), ollama(think="medium"), id="effort-medium"),
    pytest.param(chat(reasoning_effort="high"), ollama(think="high"), id="effort-high"),
    pytest.param(chat(reasoning_effort="xhigh"), ollama(think="high"), id="effort-xhigh"),
    pytest.param(chat(reasoning={"effort": "low", "summary": "auto"}, reasoning_effort="high"),
                 ollama(think="low"), id="reasoning-object-wins"),
    pytest.param(chat(think=True, reasoning_effort="none"), ollama(think=True), id="native-think-wins"),
    pytest.param(chat(logprobs=True, top_logprobs=3), ollama(logprobs=True, top_logprobs=3), id="logprobs"),
    pytest.param(
        chat(stream=True, stream_options={"include_usage": True}, n=2, exclude_reasoning=True),
        ollama(stream=True), id="gateway-fields-not-sent"),
    pytest.param(
        chat(keep_alive="10m", user="u1", logit_bias={"50256": -100}, parallel_tool_calls=False,
             metadata={"a": "b"}, store=False, service_tier="auto", x_vendor={"k": 1}),
        ollama(keep_alive="10m", user="u1", logit_bias={"50256": -100}, parallel_tool_calls=False,
               metadata={"a": "b"}, store=False, service_tier="auto", x_vendor={"k": 1}),
        id="unmapped-and-unknown-fields-pass-through"),
    pytest.param(chat(tools=[WEATHER, TIME]), ollama(tools=[WEATHER, TIME]), id="tools"),
    pytest.param(chat(tools=[WEATHER], tool_choice="auto"), ollama(tools=[WEATHER]), id="tool-choice-auto"),
    pytest.param(chat(tools=[WEATHER], tool_choice="required"), ollama(tools=[WEATHER]),
                 id="tool-choice-required"),
    pytest.param(chat(tools=[WEATHER], tool_choice="none"), ollama(), id="tool-choice-none"),
    pytest.param(chat(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "time"}}),
                 ollama(tools=[TIME]), id="tool-choice-named"),
    pytest.param(
        chat(tools=[WEATHER, TIME], tool_choice={"type": "allowed_tools", "allowed_tools": {
            "mode": "auto", "tools": [{"type": "function", "function": {"name": "weather"}}]}}),
        ollama(tools=[WEATHER]), id="tool-choice-allowed-tools"),
]


@pytest.mark.parametrize("body, expected", BODY_CASES)
def test_body(body, expected):
    assert from_openai_chat(body) == expected


def test_body_is_not_mutated():
    body = chat(tools=[WEATHER], tool_choice="none", options={"top_k": 1}, temperature=0.1)
    snapshot = repr(body)
    from_openai_chat(body)
    assert repr(body) == snapshot


REFUSED = [
    pytest.param({"model": "m"}, "messages", id="no-messages"),
    pytest.param({"model": "m", "messages": []}, "messages", id="empty-messages"),
    pytest.param({"model": "m", "messages": ["hi"]}, "messages[0]", id="message-not-object"),
    pytest.param({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role",
                 id="unknown-role"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": None}]}, "messages[0].content",
                 id="user-null-content"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content",
                 id="content-wrong-type"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "input_audio", "input_audio": {}}]}]},
        "messages[0].content[1].type", id="audio-part"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
                 "messages[0].content[0].text", id="text-part-without-text"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
        "messages[0].content[0].image_url.url", id="image-bad-scheme"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": "data:image/png;base64,@@@"}]}]},
        "messages[0].content[0].image_url", id="image-bad-base64"),
    pytest.param({"model": "m", "messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "2", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
        "messages[1].tool_calls[1].function.arguments", id="arguments-not-json"),
    pytest.param({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
        "messages[0].tool_calls[0].function.arguments", id="arguments-not-object"),
    pytest.param({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"arguments": "{}"}}]}]},
        "messages[0].tool_calls[0].function.name", id="tool-call-without-name"),
    pytest.param({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "custom", "custom": {"name": "f", "input": "x"}}]}]},
        "messages[0].tool_calls[0].type", id="custom-tool-call"),
    pytest.param(chat(tools={"weather": WEATHER}), "tools", id="tools-not-list"),
    pytest.param(chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
                 "tool_choice", id="tool-choice-unknown-name"),
    pytest.param(chat(tools=[WEATHER], tool_choice="sometimes"), "tool_choice", id="tool-choice-bad"),
    pytest.param(chat(response_format={"type": "yaml"}), "response_format.type", id="format-bad"),
    pytest.param(chat(reasoning_effort="extreme"), "reasoning_effort", id="effort-bad"),
    pytest.param(chat(reasoning={"effort": "lots"}), "reasoning.effort", id="reasoning-effort-bad"),
    pytest.param(chat(reasoning="high"), "reasoning", id="reasoning-not-object"),
    pytest.param(chat(stop=["a", 1]), "stop", id="stop-not-strings"),
    pytest.param(chat(temperature="hot"), "temperature", id="temperature-not-number"),
    pytest.param(chat(max_tokens=1.5), "max_tokens", id="max-tokens-not-int"),
    pytest.param(chat(seed=True), "seed", id="seed-bool"),
    pytest.param(chat(options=[1]), "options", id="options-not-object"),
    pytest.param(chat(stream="yes"), "stream", id="stream-not-bool"),
]


@pytest.mark.parametrize("body, param", REFUSED)
def test_refused(body, param):
    with pytest.raises(InvalidRequest) as caught:
        from_openai_chat(body)
    assert caught.value.param == param
    assert caught.value.status == 400


def test_refused_part_names_its_type():
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}
    with pytest.raises(InvalidRequest, match="'file'"):
        from_openai_chat(body)
