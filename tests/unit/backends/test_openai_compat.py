"""The provider backend against the fake provider on loopback: translation, retries, errors."""

import json
import time

import pytest

from ollama_proxy.backends.openai_compat import ProviderBackend
from ollama_proxy.config import ModelFacts, ProviderSettings, RetrySettings
from ollama_proxy.errors import (
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.fakes.openai_provider import PROVIDER_KEY


def settings(base_url, **overrides):
    values = dict(name="fakeai", base_url=base_url, preset=None, api_key=PROVIDER_KEY, api_key_env="FAKEAI_KEY",
                  models=(), headers={"X-Title": "proxy"}, model_facts={}, connect_timeout=2.0,
                  read_timeout=5.0, stream_idle_timeout=5.0)
    return ProviderSettings(**{**values, **overrides})


@pytest.fixture
def backend(provider):
    made = ProviderBackend(settings(provider.base_url), RetrySettings(attempts=3, total_timeout=5.0, backoff=0.01,
                                                                      max_backoff=0.05))
    made.slept = []
    made.sleep = lambda seconds: (made.slept.append(seconds), time.sleep(seconds))
    return made


def chat(backend, stream=True, **body):
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hello"}], "stream": stream, **body}
    return backend.post_json("/api/chat", body, "fakeai:fake-chat")


def test_chat_stream_becomes_ollama_ndjson(backend, provider):
    provider.script("fake-chat", content="Hi there", reasoning="let me see", fragment_size=4)
    with chat(backend, think=True) as answer:
        assert answer.is_ndjson and answer.status == 200
        lines = [json.loads(line) for line in answer.read().splitlines()]
    assert "".join(line["message"].get("thinking", "") for line in lines) == "let me see"
    assert "".join(line["message"]["content"] for line in lines) == "Hi there"
    assert all(line["model"] == "fakeai:fake-chat" for line in lines)
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 5 and final["prompt_eval_count"] > 0
    sent = provider.last("/v1/chat/completions")
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}" and sent.headers["x-title"] == "proxy"


def test_whole_chat_is_folded_with_tool_calls_assembled(backend, provider):
    provider.script("fake-chat", content="", fragment_size=3, tool_calls=[
        {"name": "get_weather", "arguments": '{"city": "Paris"}'}, {"name": "get_time", "arguments": '{}'}])
    with chat(backend, stream=False, tools=[{"type": "function", "function": {"name": "get_weather"}}]) as answer:
        assert not answer.is_ndjson
        whole = json.loads(answer.read())
    assert whole["message"]["tool_calls"] == [
        {"id": "call_fake0", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}},
        {"id": "call_fake1", "function": {"index": 1, "name": "get_time", "arguments": {}}}]
    assert whole["done"] is True and whole["done_reason"] == "stop"


@pytest.mark.parametrize("stream", [True, False])
def test_a_tool_call_cut_by_the_token_limit_ends_with_done_reason_length(backend, provider, stream):
    provider.script("fake-chat", content="Let me look.", fragment_size=4, finish_reason="length", tool_calls=[
        {"name": "get_weather", "arguments": '{"city": "Paris"}'}, {"name": "get_time", "arguments": '{"zone": "Eu'}])
    with chat(backend, stream=stream, tools=[{"type": "function", "function": {"name": "get_weather"}}]) as answer:
        lines = [json.loads(line) for line in answer.read().splitlines()]
    calls = [call for line in lines for call in line["message"].get("tool_calls", [])]
    assert calls == [{"id": "call_fake0", "function": {"index": 0, "name": "get_weather",
                                                       "arguments": {"city": "Paris"}}}]
    assert "".join(line["message"]["content"] for line in lines) == "Let me look."
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "length"


def test_generate_with_the_presets_thinking_switch(provider):
    backend = ProviderBackend(settings(provider.base_url, preset="dashscope"), RetrySettings())
    answer = backend.post_json("/api/generate", {"model": "fake-chat", "prompt": "yo", "think": False,
                                                 "stream": False})
    assert answer.json()["response"] == "You said: yo"
    assert provider.last("/v1/chat/completions").json["enable_thinking"] is False


def test_a_load_request_is_answered_at_once(backend, provider):
    answer = backend.post_json("/api/generate", {"model": "fake-chat"})
    assert [chunk["done_reason"] for chunk in answer.iter_chunks()] == ["load"]
    assert provider.requests == []


@pytest.mark.parametrize("path, body, expected", [
    ("/api/embed", {"model": "fake-embed", "input": ["a b", "c"]},
     {"model": "fakeai:fake-embed", "embeddings": [[3.0, 1.5, 1.0, 0.75], [1.0, 0.5, 0.3333, 0.25]],
      "load_duration": 0, "prompt_eval_count": 3}),
    ("/api/embeddings", {"model": "fake-embed", "prompt": "abc"}, {"embedding": [3.0, 1.5, 1.0, 0.75]}),
])
def test_embeddings(backend, path, body, expected):
    answer = backend.post_json(path, body, "fakeai:fake-embed").json()
    answer.pop("total_duration", None)
    assert answer == expected


def test_429_is_retried_after_retry_after(backend, provider):
    provider.script("fake-chat", rate_limited=2, retry_after="0.2")
    started = time.monotonic()
    assert chat(backend, stream=False).json()["message"]["content"] == "You said: hello"
    assert len(provider.calls("/v1/chat/completions")) == 3
    assert backend.slept == [0.2, 0.2] and time.monotonic() - started >= 0.4


def test_429_past_the_retries_is_rate_limited_with_retry_after(backend, provider):
    provider.script("fake-chat", rate_limited=5, retry_after="0")
    with pytest.raises(RateLimited) as caught:
        chat(backend)
    assert caught.value.retry_after == 0 and "Rate limit reached" in caught.value.message
    assert len(provider.calls("/v1/chat/completions")) == 3


def test_a_retry_after_beyond_the_total_timeout_is_not_waited_for(backend, provider):
    provider.script("fake-chat", rate_limited=1, retry_after="60")
    with pytest.raises(RateLimited) as caught:
        chat(backend)
    assert caught.value.retry_after == 60 and backend.slept == []


def test_503_is_retried_with_jittered_backoff(backend, provider):
    provider.script("fake-chat", fail_status=503, fail_times=2)
    backend.jitter = lambda: 1.0
    assert chat(backend, stream=False).json()["done"] is True
    assert backend.slept == [0.01, 0.02]


@pytest.mark.parametrize("fields, status, message", [
    ({"fail_status": 400}, 400, "fakeai: scripted failure 400"),
    ({"fail_status": 500}, 500, "fakeai: scripted failure 500"),
    ({"fail_status": 503}, 503, "fakeai: scripted failure 503"),
    ({"fail_status": 402, "fail_body": "Insufficient Balance"}, 402, "fakeai: Insufficient Balance"),
])
def test_errors_keep_status_and_message(backend, provider, fields, status, message):
    provider.script("fake-chat", **fields)
    with pytest.raises(UpstreamError) as caught:
        chat(backend)
    assert (caught.value.status, caught.value.message) == (status, message)
    assert len(provider.calls("/v1/chat/completions")) == (3 if status == 503 else 1)


def test_an_unknown_model_is_404_model_not_found(backend):
    with pytest.raises(UpstreamError) as caught:
        backend.post_json("/api/chat", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")


def test_a_wrong_key_is_the_providers_401(provider):
    backend = ProviderBackend(settings(provider.base_url, api_key="sk-wrong"), RetrySettings())
    with pytest.raises(UpstreamError) as caught:
        backend.list_models()
    assert caught.value.status == 401 and "sk-wrong" not in caught.value.message


def test_a_drop_mid_stream_raises_from_the_iterator(backend, provider):
    provider.script("fake-chat", content="a long answer here", fragment_size=2, drop_after=3)
    answer = chat(backend)
    with pytest.raises(UpstreamError, match="lost mid-answer|before the answer was complete"):
        list(answer.iter_chunks())


def test_a_slow_first_byte_past_read_timeout_is_504(provider):
    provider.script("fake-chat", first_byte_delay=1.0)
    backend = ProviderBackend(settings(provider.base_url, read_timeout=0.3), RetrySettings())
    with pytest.raises(UpstreamTimeout, match="did not answer within 0.3s") as raised:
        chat(backend)
    assert "read_timeout of backend fakeai, else service.read_timeout" in raised.value.message


def test_connection_refused_is_retried_then_502():
    backend = ProviderBackend(settings("http://127.0.0.1:9"), RetrySettings(attempts=2, backoff=0.01))
    slept = []
    backend.sleep = slept.append
    with pytest.raises(UpstreamUnavailable, match="cannot reach provider fakeai .*connection refused"):
        backend.list_models()
    assert len(slept) == 1


def test_listing_show_and_ps(provider):
    facts = {"fake-reasoner": ModelFacts(context_length=65536, capabilities=("completion", "thinking"))}
    backend = ProviderBackend(settings(provider.base_url, model_facts=facts), RetrySettings())
    assert [m["name"] for m in backend.tags()["models"]] == ["fakeai:fake-chat", "fakeai:fake-reasoner",
                                                             "fakeai:fake-embed"]
    backend.tags()
    assert len(provider.calls("/v1/models")) == 1  # cached
    shown = backend.show("fake-reasoner")
    assert shown["capabilities"] == ["completion", "thinking"]
    assert shown["model_info"] == {"general.architecture": "fakeai", "fakeai.context_length": 65536}
    assert backend.post_json("/api/show", {"model": "fake-reasoner"}).json() == shown
    with pytest.raises(NotFound):
        backend.show("missing")
    assert backend.ps() == {"models": []}


def test_the_model_list_is_kept_for_models_cache_seconds(provider):
    kept = ProviderBackend(settings(provider.base_url, models_cache_seconds=60.0), RetrySettings())
    asked_each_time = ProviderBackend(settings(provider.base_url, models_cache_seconds=0.0), RetrySettings())
    for backend in (kept, asked_each_time, kept, asked_each_time):
        backend.list_models()
    assert len(provider.calls("/v1/models")) == 3


def test_the_connection_pool_has_the_configured_size():
    backend = ProviderBackend(settings("http://127.0.0.1:9", pool_size=7), RetrySettings())
    assert backend._sessions.get().get_adapter("http://127.0.0.1:9")._pool_maxsize == 7


def test_configured_models_need_no_listing(provider):
    backend = ProviderBackend(settings(provider.base_url, models=("a", "b")), RetrySettings())
    assert backend.list_models() == ["a", "b"] and provider.requests == []
    assert backend.known_models() == ["a", "b"] and backend.listing_ms is None


def test_the_models_known_without_asking_are_the_last_listings(backend, provider):
    assert backend.known_models() is None and backend.listing_ms is None
    listed = backend.list_models()
    assert backend.known_models() == listed and backend.listing_ms > 0
    assert len(provider.calls("/v1/models")) == 1


def test_model_management_is_refused():
    backend = ProviderBackend(settings("http://127.0.0.1:9"), RetrySettings())
    with pytest.raises(InvalidRequest, match="used, not managed"):
        backend.open("POST", "/api/pull")
    with pytest.raises(InvalidRequest, match="not available"):
        backend.post_json("/api/create", {"model": "x"})


@pytest.mark.parametrize("options, usage_chunk", [(None, False), ({"include_usage": False}, False),
                                                   ({"include_usage": True}, True)])
def test_openai_passthrough_asks_for_the_usage_and_shows_it_only_if_asked(backend, provider, options, usage_chunk):
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if options is not None:
        body["stream_options"] = options
    with backend.open_openai("/v1/chat/completions", body) as answer:
        raw = answer.read()
    assert raw.startswith(b": keep-alive") and raw.endswith(b"data: [DONE]\n\n")
    assert (b'"choices": [], "usage"' in raw) is usage_chunk
    assert answer.usage == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert provider.last("/v1/chat/completions").json["stream_options"] == {"include_usage": True}


def test_openai_passthrough_sends_only_allowed_client_headers_and_the_backends_own(provider):
    backend = ProviderBackend(settings(provider.base_url, organization="org-configured", project="proj_configured"),
                              RetrySettings())
    client = [("Authorization", "Bearer client"), ("Cookie", "session=1"), ("X-Forwarded-For", "10.1.2.3"),
              ("OpenAI-Organization", "org-client"), ("OpenAI-Project", "proj_client"), ("X-Stainless-OS", "Linux"),
              ("Accept", "application/json")]
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    with backend.open_openai("/v1/chat/completions", body, client) as answer:
        answer.read()
    sent = provider.last("/v1/chat/completions").headers
    assert (sent["authorization"], sent["openai-organization"], sent["openai-project"], sent["accept"]) == (
        f"Bearer {PROVIDER_KEY}", "org-configured", "proj_configured", "application/json")
    assert not {"cookie", "x-forwarded-for", "x-stainless-os"} & set(sent)


def test_only_allowed_answer_headers_come_back(backend, provider):
    provider.script("fake-chat", headers={"Set-Cookie": "a=1", "OpenAI-Organization": "org-x",
                                          "X-Request-Id": "req-1", "x-ratelimit-remaining-tokens": "9"})
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    with backend.open_openai("/v1/chat/completions", body) as answer:
        assert answer.headers == {"Content-Type": "application/json", "X-Upstream-Request-Id": "req-1"}


def test_an_error_echoing_the_credentials_has_them_blanked(provider):
    provider.script("fake-chat", fail_status=400, echo_credentials=True)
    backend = ProviderBackend(settings(provider.base_url, organization="org-configured", project="proj_configured"),
                              RetrySettings())
    with pytest.raises(UpstreamError) as caught:
        chat(backend)
    assert caught.value.message == ("fakeai: scripted failure 400 (you sent Authorization: Bearer ***; "
                                    "OpenAI-Organization: ***; OpenAI-Project: ***)")


@pytest.mark.parametrize("passthrough", [True, False])
def test_an_error_mid_stream_echoing_the_key_has_it_blanked(backend, provider, passthrough):
    provider.script("fake-chat", content="a long answer", fragment_size=2, error_after=3, echo_credentials=True)
    if passthrough:
        body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with backend.open_openai("/v1/chat/completions", body) as answer:
            said = answer.read().decode()
        assert "scripted failure mid-stream (you sent Authorization: Bearer ***)" in said
    else:
        with chat(backend) as answer, pytest.raises(UpstreamError) as caught:
            list(answer.iter_chunks())
        said = caught.value.message
        assert said.endswith("scripted failure mid-stream (you sent Authorization: Bearer ***)")
    assert PROVIDER_KEY not in said


def test_the_base_urls_userinfo_is_not_in_messages():
    backend = ProviderBackend(settings("http://gateway-user:s3cret@127.0.0.1:9/v1"), RetrySettings(attempts=1))
    with pytest.raises(UpstreamUnavailable) as caught:
        backend.list_models()
    assert caught.value.message.startswith("cannot reach provider fakeai at http://127.0.0.1:9/v1: ")


def test_openai_passthrough_whole_answer_usage(backend):
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    answer = backend.open_openai("/chat/completions", body)
    assert answer.json()["choices"][0]["message"]["content"] == "You said: hi"
    assert answer.usage["completion_tokens"] == 3
