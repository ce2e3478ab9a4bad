"""Provider models through the real server, driven by the official clients.

The proxy runs with one Ollama (the fake Ollama) and one OpenAI-compatible
provider (the fake provider) named ``fakeai``; the ``ollama`` client uses the
provider's models as ``fakeai:<model>`` exactly as it uses local ones.
"""

from __future__ import annotations

import json
import time

import anthropic
import ollama
import openai
import pytest
import requests

from tests.e2e.conftest import GENERATE, MANAGE, auth, base_config
from tests.fakes.openai_provider import PROVIDER_KEY

CHAT = "fakeai:fake-chat"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function",
           "function": {"name": "get_weather", "description": "the weather in a city", "parameters": CITY}}


@pytest.fixture(scope="module")
def server(fake_server, provider_server, tmp_path_factory):
    from tests.e2e.server import ProxyServer

    config = base_config(fake_server.url)
    config["backends"] = [{
        "name": "fakeai", "type": "openai", "preset": "dashscope", "base_url": provider_server.base_url,
        "api_key_env": "FAKEAI_API_KEY", "headers": {"X-Title": "ollama-proxy"},
        "model_facts": {"fake-reasoner": {"context_length": 65536, "capabilities": ["completion", "thinking"]},
                        "fake-embed": {"capabilities": ["embedding"]}},
    }]
    config["retry"] = {"attempts": 3, "total_timeout": 10, "backoff": 0.05, "max_backoff": 0.2}
    proxy = ProxyServer(config, tmp_path_factory.mktemp("providers"), env={"FAKEAI_API_KEY": PROVIDER_KEY})
    yield proxy.start()
    proxy.stop()


@pytest.fixture
def client(server, fake, provider):
    with ollama.Client(host=server.url, headers=auth(GENERATE)) as client:
        yield client


def test_chat_streams_from_the_provider(client, provider):
    provider.script("fake-chat", content="Hello from the cloud", fragment_size=3)
    parts = list(client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], stream=True,
                             options={"temperature": 0.3, "num_predict": 64}, keep_alive="5m"))
    assert "".join(part.message.content for part in parts) == "Hello from the cloud"
    assert len(parts) > 3 and parts[-1].done and parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == 7 and parts[-1].prompt_eval_count > 0
    assert {part.model for part in parts} == {CHAT}
    sent = provider.last("/v1/chat/completions")
    assert sent.json["model"] == "fake-chat" and sent.json["temperature"] == 0.3 and sent.json["max_tokens"] == 64
    assert "keep_alive" not in sent.json and sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}" and sent.headers["x-title"] == "ollama-proxy"


def test_whole_chat_with_tool_calls_assembled(client, provider):
    provider.script("fake-chat", content="", fragment_size=4, tool_calls=[
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}])
    answer = client.chat(model=CHAT, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER])
    calls = [(call.function.name, dict(call.function.arguments)) for call in answer.message.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]
    follow_up = [{"role": "user", "content": "weather?"}, answer.message,
                 {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
                 {"role": "tool", "tool_name": "get_weather", "content": "rainy"}]
    client.chat(model=CHAT, messages=follow_up, tools=[WEATHER])
    sent = provider.last("/v1/chat/completions").json["messages"]
    # The ollama client drops call ids; each result still names the call it answers.
    assert [call["id"] for call in sent[1]["tool_calls"]] == [m["tool_call_id"] for m in sent[2:]]
    assert sent[1]["tool_calls"][1]["function"]["arguments"] == '{"city":"Tokyo"}'


def test_a_tool_call_cut_by_the_token_limit_ends_the_answer_with_done_reason_length(client, provider):
    provider.script("fake-chat", content="", fragment_size=4, finish_reason="length", tool_calls=[
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_weather", "arguments": '{"city": "To'}])
    messages = [{"role": "user", "content": "weather?"}]
    parts = list(client.chat(model=CHAT, messages=messages, tools=[WEATHER], stream=True, options={"num_predict": 20}))
    calls = [(call.function.name, dict(call.function.arguments)) for part in parts
             for call in part.message.tool_calls or []]
    assert calls == [("get_weather", {"city": "Paris"})]
    assert parts[-1].done and parts[-1].done_reason == "length"
    whole = client.chat(model=CHAT, messages=messages, tools=[WEATHER], options={"num_predict": 20})
    assert [call.function.name for call in whole.message.tool_calls] == ["get_weather"]
    assert whole.done_reason == "length"


def test_thinking_goes_through_the_presets_switch(client, provider):
    provider.script("fake-reasoner", reasoning="Let me think.", content="42")
    answer = client.chat(model="fakeai:fake-reasoner", messages=[{"role": "user", "content": "?"}], think=True)
    assert (answer.message.thinking, answer.message.content) == ("Let me think.", "42")
    assert provider.last("/v1/chat/completions").json["enable_thinking"] is True


@pytest.mark.parametrize(("model", "kept"), [
    pytest.param("fake-reasoner", True, id="facts say it thinks"),
    pytest.param("fake-embed", False, id="facts say it cannot"),
    pytest.param("fake-chat", True, id="no facts: the provider judges"),
])
def test_anthropic_thinking_on_a_provider_model_follows_its_facts(server, provider, model, kept):
    with anthropic.Anthropic(base_url=server.url, api_key=GENERATE, max_retries=0) as client:
        client.messages.create(model=f"fakeai:{model}", max_tokens=64, messages=[{"role": "user", "content": "?"}],
                               thinking={"type": "enabled", "budget_tokens": 31999})
    assert ("enable_thinking" in provider.last("/v1/chat/completions").json) is kept


def test_generate_stream_and_whole(client, provider):
    parts = list(client.generate(model=CHAT, prompt="ping", system="be brief", stream=True))
    assert "".join(part.response for part in parts) == "You said: ping" and parts[-1].done
    whole = client.generate(model=CHAT, prompt="pong")
    assert whole.response == "You said: pong" and whole.done_reason == "stop"
    assert provider.last("/v1/chat/completions").json["messages"] == [{"role": "user", "content": "pong"}]


@pytest.mark.parametrize("field, value", [("raw", True), ("suffix", "return x")])
def test_generate_refuses_raw_and_suffix(client, field, value):
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model=CHAT, prompt="def f():", **{field: value})
    assert caught.value.status_code == 400 and field in caught.value.error


def test_embed_and_embeddings(client, provider):
    embedded = client.embed(model="fakeai:fake-embed", input=["one two", "three"])
    assert embedded.embeddings == [[7.0, 3.5, 2.3333, 1.75], [5.0, 2.5, 1.6667, 1.25]]
    assert embedded.prompt_eval_count == 3 and embedded.model == "fakeai:fake-embed"
    legacy = client.embeddings(model="fakeai:fake-embed", prompt="abc")
    assert legacy.embedding == [3.0, 1.5, 1.0, 0.75]


def test_listings(client, server):
    names = {model.model for model in client.list().models}
    assert {"fakeai:fake-chat", "fakeai:fake-reasoner", "fakeai:fake-embed", "llama3.2:latest"} <= names
    shown = client.show("fakeai:fake-reasoner")
    assert shown.capabilities == ["completion", "thinking"]
    assert shown.modelinfo["fakeai.context_length"] == 65536
    assert all(not model.model.startswith("fakeai:") for model in client.ps().models)
    assert requests.get(server.url + "/api/version", headers=auth(), timeout=5).json()["version"]


def test_model_management_on_a_provider_model_is_a_clear_400(server):
    with ollama.Client(host=server.url, headers=auth(MANAGE)) as manager, \
            pytest.raises(ollama.ResponseError) as caught:
        manager.pull(CHAT)
    assert caught.value.status_code == 400 and "provider" in caught.value.error


def test_429_with_retry_after_is_retried(client, provider):
    provider.script("fake-chat", rate_limited=2, retry_after="0.3")
    started = time.monotonic()
    answer = client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    took = time.monotonic() - started
    assert answer.message.content == "You said: hi"
    calls = provider.calls("/v1/chat/completions")
    assert len(calls) == 3 and calls[2].at - calls[0].at >= 0.6
    print(f"429 x2 with Retry-After 0.3: 3 attempts, {took:.2f}s")


def test_503_is_retried(client, provider):
    provider.script("fake-chat", fail_status=503, fail_times=2)
    started = time.monotonic()
    assert client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}]).done
    assert len(provider.calls("/v1/chat/completions")) == 3
    print(f"503 x2: 3 attempts, {time.monotonic() - started:.2f}s")


def test_a_429_that_outlasts_the_retries_is_a_429_with_retry_after(server, provider):
    provider.script("fake-chat", rate_limited=10, retry_after="30")
    answer = requests.post(server.url + "/api/chat", headers=auth(), timeout=10,
                           json={"model": CHAT, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "30"
    assert "Rate limit reached" in answer.json()["error"]


@pytest.mark.parametrize("status, body, message", [
    (402, "Insufficient Balance", "fakeai: Insufficient Balance"),
    (400, None, "fakeai: scripted failure 400"),
])
def test_errors_keep_status_and_message(client, provider, status, body, message):
    provider.script("fake-chat", fail_status=status, fail_body=body)
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    assert (caught.value.status_code, caught.value.error) == (status, message)


def test_a_drop_mid_stream_ends_with_an_error_line(client, provider):
    provider.script("fake-chat", content="a long answer that breaks", fragment_size=2, drop_after=4)
    with pytest.raises(ollama.ResponseError):
        list(client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], stream=True))


def test_the_key_is_never_logged(server, client, provider):
    client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    provider.script("fake-chat", fail_status=500)
    with pytest.raises(ollama.ResponseError):
        client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    logs = server.stderr() + "\n".join(server.access_lines())
    assert PROVIDER_KEY not in logs


def test_openai_sdk_requests_pass_through_untouched(server, provider):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=GENERATE, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], stream=True,
                                             stream_options={"include_usage": True})
        chunks = list(stream)
        whole = sdk.chat.completions.with_raw_response.create(model=CHAT, messages=[{"role": "user", "content": "yo"}],
                                                              n=2, logprobs=True)
        vectors = sdk.embeddings.create(model="fakeai:fake-embed", input=["abc"], encoding_format="float")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hi"
    assert {c.id for c in chunks} == {"chatcmpl-fake"} and chunks[-1].usage.completion_tokens == 3
    sent = provider.calls("/v1/chat/completions")
    assert sent[0].json == {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                            "stream_options": {"include_usage": True}}
    assert sent[1].json["n"] == 2 and sent[1].json["logprobs"] is True and len(sent) == 2
    completion = whole.parse()
    assert completion.id == "chatcmpl-fake" and completion.choices[0].message.content == "You said: yo"
    entry = server.access_entry(whole.headers["X-Request-Id"])
    assert (entry["completion_tokens"], entry["backend"], entry["upstream_model"]) == (3, "fakeai", "fake-chat")
    assert vectors.data[0].embedding == [3.0, 1.5, 1.0, 0.75]


def test_a_provider_failing_mid_stream_ends_the_openai_stream_with_an_error_event(server, provider):
    provider.script("fake-chat", content="a long answer that breaks", fragment_size=2, drop_after=4)
    with requests.post(server.url + "/v1/chat/completions", headers=auth(), timeout=10, stream=True, json={
            "model": CHAT, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as answer:
        body = answer.content
    events = [line for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert answer.status_code == 200 and len(events) >= 4
    assert b'"type":"api_error"' in events[-2] and events[-1] == b"data: [DONE]"


@pytest.mark.parametrize("stream", [True, False])
def test_the_access_line_has_the_providers_token_counts(server, provider, stream):
    provider.script("fake-chat", content="one two three", fragment_size=4)
    answer = requests.post(server.url + "/api/chat", headers=auth(), timeout=10, json={
        "model": CHAT, "stream": stream, "messages": [{"role": "user", "content": "count"}]})
    entry = server.access_entry(answer.headers["X-Request-Id"])
    sent_prompt = len(json.dumps(provider.last("/v1/chat/completions").json["messages"]).split())
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (sent_prompt, 4)
    assert (entry["backend"], entry["upstream_model"]) == ("fakeai", "fake-chat")
