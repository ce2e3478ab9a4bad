"""The Anthropic Messages API through the real server, driven by the official anthropic SDK."""

from __future__ import annotations

import base64
import time

import anthropic
import pytest
import requests

from tests.e2e.conftest import GENERATE, base_config

HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKm"
                       "MIQAAAABJRU5ErkJggg==")


@pytest.fixture
def client(proxy):
    with anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE, max_retries=0) as client:
        yield client


def test_create(client, fake):
    message = client.messages.create(model="llama3.2", max_tokens=64, messages=HELLO, system="Be brief.")
    assert message.id.startswith("msg_") and message.type == "message" and message.model == "llama3.2"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "You said: hello"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 3)
    sent = fake.last("/api/chat").json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["options"]["num_predict"] == 64
    assert sent["stream"] is True  # asked as a stream and folded: a leaving client can close it
    assert "authorization" not in fake.last("/api/chat").headers and "x-api-key" not in fake.last("/api/chat").headers


def test_stream_text_and_final_message(client, fake):
    fake.script("llama3.2:latest", reply="one two three")
    with client.messages.stream(model="llama3.2", max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three"
    assert final.content[0].text == "one two three" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


def test_stream_event_sequence_is_anthropics(proxy, fake):
    fake.script("qwen3:8b", reply="ok", thinking="hmm")
    body = {"model": "qwen3:8b", "max_tokens": 32, "messages": HELLO, "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    with requests.post(proxy.url + "/v1/messages", json=body, stream=True,
                       headers={"x-api-key": GENERATE, "anthropic-version": "2023-06-01"}) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in answer.iter_lines(decode_unicode=True)
                  if line.startswith("event: ")]
    assert events == ["message_start",
                      "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                      "content_block_start", "content_block_delta", "content_block_stop",
                      "message_delta", "message_stop"]


def test_thinking(client, fake):
    fake.script("qwen3:8b", reply="42", thinking="Let me think.")
    message = client.messages.create(model="qwen3:8b", max_tokens=64, messages=HELLO,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert fake.last("/api/chat").json["think"] is True
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think." and message.content[1].text == "42"


# What Claude Code sends on every turn: with a Claude model name, and with any other (and an effort).
CLAUDE_CODE_THINKING = [
    pytest.param({"thinking": {"type": "enabled", "budget_tokens": 31999, "display": "omitted"}}, id="enabled"),
    pytest.param({"thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"}},
                 id="adaptive with an effort"),
]


def _create(client: anthropic.Anthropic, stream: bool, **kwargs) -> anthropic.types.Message:
    if not stream:
        return client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as streamed:
        return streamed.get_final_message()


@pytest.mark.parametrize("fields", CLAUDE_CODE_THINKING)
@pytest.mark.parametrize("stream", [False, True])
def test_thinking_is_left_out_for_a_model_that_cannot_think(client, fake, fields, stream):
    message = _create(client, stream, model="llama3.2", max_tokens=64, messages=HELLO, extra_body=fields)
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "You said: hello"
    assert "think" not in fake.last("/api/chat").json


def test_thinking_is_kept_for_a_model_that_can_think(client, fake):
    fake.script("qwen3:8b", reply="42", thinking="Let me think.")
    message = client.messages.create(model="qwen3:8b", max_tokens=64, messages=HELLO,
                                     extra_body={"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})
    assert fake.last("/api/chat").json["think"] == "high"
    assert [b.type for b in message.content] == ["thinking", "text"]


def test_ollamas_own_think_is_the_clients_and_gets_ollamas_answer(client, fake):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="llama3.2", max_tokens=64, messages=HELLO, extra_body={"think": True})
    assert caught.value.body["error"]["message"] == '"llama3.2" does not support thinking'


def test_a_system_message_mid_conversation_stays_where_it_stands(client, fake):
    environment = {"role": "system", "content": [{"type": "text", "text": "# Environment",
                                                  "cache_control": {"type": "ephemeral"}}]}
    message = client.messages.create(model="llama3.2", max_tokens=64, system="Be brief.",
                                     messages=[*HELLO, environment], extra_headers={
                                         "anthropic-beta": "mid-conversation-system-2026-04-07"})
    assert message.content[0].text == "You said: hello"
    assert fake.last("/api/chat").json["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
        {"role": "system", "content": "# Environment"}]


def test_tool_use_round_trip(client, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Lima"}}}])
    first = client.messages.create(model="llama3.2", max_tokens=64, tools=[WEATHER],
                                   messages=[{"role": "user", "content": "Weather in Lima?"}])
    use = first.content[-1]
    assert first.stop_reason == "tool_use"
    assert use.type == "tool_use" and use.id.startswith("toolu_") and use.input == {"city": "Lima"}

    fake.script("llama3.2:latest", reply="Sunny in Lima.")
    second = client.messages.create(model="llama3.2", max_tokens=64, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Lima?"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])
    assert second.content[0].text == "Sunny in Lima."
    sent = fake.last("/api/chat").json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Lima"}}
    assert {k: sent["messages"][2][k] for k in ("role", "content", "tool_name")} == \
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_tool_use_streamed(client, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Lima"}}}])
    with client.messages.stream(model="llama3.2", max_tokens=64, tools=[WEATHER], messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[-1].input == {"city": "Lima"}


def test_image(client, fake):
    client.messages.create(model="llava", max_tokens=16, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
        {"type": "text", "text": "What is this?"}]}])
    sent = fake.last("/api/chat").json["messages"][0]
    assert base64.b64decode(sent["images"][0]) == PNG and sent["content"] == "What is this?"


def test_count_tokens_is_an_estimate(client):
    short = client.messages.count_tokens(model="llama3.2", messages=HELLO)
    long = client.messages.count_tokens(model="llama3.2", messages=[{"role": "user", "content": "word " * 400}])
    assert 0 < short.input_tokens < long.input_tokens


def test_older_prefix_still_works(proxy, fake):
    answer = requests.post(proxy.url + "/anthropic/v1/messages", headers={"x-api-key": GENERATE},
                           json={"model": "llama3.2", "max_tokens": 8, "messages": HELLO})
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "You said: hello"


def test_ping_while_the_model_loads(start_proxy, fake):
    proxy = start_proxy({**base_config(fake.url), "service": {**base_config(fake.url)["service"],
                                                                "stream_ping_interval": 0.2}}, workers=1)
    fake.script("llama3.2:latest", reply="ok", first_byte_delay=1.0)
    body = {"model": "llama3.2", "max_tokens": 8, "messages": HELLO, "stream": True}
    started = time.monotonic()
    with requests.post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": GENERATE},
                       stream=True) as answer:
        assert answer.status_code == 200
        first_event_after = None
        events = []
        for line in answer.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                first_event_after = first_event_after or time.monotonic() - started
                events.append(line.removeprefix("event: "))
    assert first_event_after < 0.6, "the client saw nothing while the model loaded"
    assert events[:3] == ["message_start", "ping", "ping"]
    assert events[-1] == "message_stop" and "content_block_delta" in events


def test_error_after_a_long_load_is_an_error_event(start_proxy, fake):
    proxy = start_proxy({**base_config(fake.url), "service": {**base_config(fake.url)["service"],
                                                                "stream_ping_interval": 0.2}}, workers=1)
    fake.script("llama3.2:latest", status=500, error="out of memory", first_byte_delay=0.6)
    with anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE, max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model="llama3.2", max_tokens=8, messages=HELLO) as stream:
                stream.get_final_message()
    assert "out of memory" in str(caught.value)


@pytest.mark.parametrize("kwargs, status, kind", [
    ({"model": "llama3.2", "messages": HELLO}, 400, "invalid_request_error"),  # no max_tokens
    ({"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "data": "x"}}]}]}, 400, "invalid_request_error"),
    ({"model": "no-such-model", "max_tokens": 8, "messages": HELLO}, 404, "not_found_error"),
])
def test_errors_in_anthropics_shape(proxy, fake, kwargs, status, kind):
    answer = requests.post(proxy.url + "/v1/messages", json=kwargs, headers={"x-api-key": GENERATE})
    assert answer.status_code == status
    assert answer.json()["type"] == "error" and answer.json()["error"]["type"] == kind


def test_sdk_raises_typed_errors(proxy, fake):
    with anthropic.Anthropic(base_url=proxy.url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model="llama3.2", max_tokens=8, messages=HELLO)
    fake.script("llama3.2:latest", status=503, error="busy")
    with anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE, max_retries=0) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(model="llama3.2", max_tokens=8, messages=HELLO)
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "busy"}


def test_error_mid_stream_becomes_an_error_event(client, fake):
    fake.script("llama3.2:latest", reply="a b c d", error_after=2, error_message="model crashed")
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="llama3.2", max_tokens=64, messages=HELLO) as stream:
            for _ in stream.text_stream:
                pass
    assert "model crashed" in str(caught.value)
