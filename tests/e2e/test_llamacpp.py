"""A real model behind the proxy: llama.cpp's llama-server as an OpenAI-compatible provider.

The proxy serves the Ollama and OpenAI APIs for ``lab:smollm2`` on top of a llama-server
running SmolLM2-135M (started by the fixtures in conftest.py). The model is tiny, so these
tests check the shapes of what comes back, never its wording; greedy sampling keeps each
answer the same from run to run.
"""

from __future__ import annotations

import json
import time

import ollama
import openai
import pytest
import requests

from tests.e2e.conftest import GENERATE, LAB_KEY, auth, base_config
from tests.e2e.llama import MODEL_NAME
from tests.e2e.server import ProxyServer

MODEL = f"lab:{MODEL_NAME}"
GREEDY = {"temperature": 0, "seed": 7, "num_predict": 24}
TOOL_GREEDY = {**GREEDY, "num_predict": 64}  # room for the whole call: cut short, its JSON would be too
HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                   "required": ["city"]}}}
# A worked example first: the tiny model calls tools reliably once it has seen one call
# (shown a tool result too, it answers with a made-up result instead).
TOOL_HISTORY = [
    {"role": "system", "content": "You answer weather questions by calling get_weather."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "user", "content": "What is the weather in Berlin?"},
]


def lab_config(ollama_url: str, llama_url: str) -> dict:
    config = base_config(ollama_url)
    config["backends"] = [{"name": "lab", "type": "openai", "base_url": f"{llama_url}/v1",
                           "api_key_env": "LAB_KEY", "models": [MODEL_NAME]}]
    return config


@pytest.fixture(scope="module")
def lab_proxy(fake_server, llama_server, tmp_path_factory):
    server = ProxyServer(lab_config(fake_server.url, llama_server.url), tmp_path_factory.mktemp("lab"),
                         env={"LAB_KEY": LAB_KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def client(lab_proxy):
    with ollama.Client(host=lab_proxy.url, headers=auth(GENERATE), timeout=60) as client:
        yield client


@pytest.fixture
def openai_client(lab_proxy):
    with openai.OpenAI(base_url=lab_proxy.url + "/v1", api_key=GENERATE, max_retries=0, timeout=60) as client:
        yield client


def assert_final_counts(final) -> None:
    assert final.done is True
    assert final.done_reason in ("stop", "length")
    assert final.prompt_eval_count > 0 and final.eval_count > 0
    assert final.total_duration > 0


def test_llama_server_checks_the_key(llama_server):
    body = {"model": MODEL_NAME, "messages": HELLO, "max_tokens": 1}
    refused = requests.post(llama_server.url + "/v1/chat/completions", json=body, timeout=30)
    assert refused.status_code == 401
    allowed = requests.post(llama_server.url + "/v1/chat/completions", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {LAB_KEY}"})
    assert allowed.status_code == 200


def test_chat_whole(client):
    answer = client.chat(model=MODEL, messages=HELLO, options=GREEDY)
    assert answer.model == MODEL
    assert answer.message.role == "assistant"
    assert answer.message.content.strip()
    assert_final_counts(answer)


def test_chat_stream_arrives_chunk_by_chunk(client):
    parts = list(client.chat(model=MODEL, messages=HELLO, options=GREEDY, stream=True))
    pieces = [part for part in parts if part.message.content]
    assert len(pieces) > 3  # one chunk per token or so, not one folded answer
    assert all(part.done is False for part in parts[:-1])
    assert all(part.model == MODEL for part in parts)
    assert_final_counts(parts[-1])
    assert "".join(part.message.content for part in parts).strip()


def test_length_limit_is_done_reason_length(client):
    answer = client.chat(model=MODEL, messages=[{"role": "user", "content": "Tell me a long story."}],
                         options={**GREEDY, "num_predict": 5})
    assert answer.done_reason == "length"
    assert answer.eval_count == 5


def test_generate_whole_and_stream(client):
    whole = client.generate(model=MODEL, prompt="The capital of France is", options=GREEDY)
    assert whole.response.strip()
    assert_final_counts(whole)
    parts = list(client.generate(model=MODEL, prompt="The capital of France is", options=GREEDY, stream=True))
    assert len([part for part in parts if part.response]) > 3
    assert all(part.done is False for part in parts[:-1])
    assert_final_counts(parts[-1])


def test_tool_call_after_a_worked_example(client):
    answer = client.chat(model=MODEL, messages=TOOL_HISTORY, tools=[WEATHER_TOOL], options=TOOL_GREEDY)
    assert answer.message.tool_calls, f"no tool call in {answer.message!r}"
    call = answer.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict) and isinstance(call.function.arguments.get("city"), str)
    assert_final_counts(answer)


def test_tool_call_streamed(client):
    parts = list(client.chat(model=MODEL, messages=TOOL_HISTORY, tools=[WEATHER_TOOL], options=TOOL_GREEDY,
                             stream=True))
    calls = [call for part in parts for call in part.message.tool_calls or []]
    assert [call.function.name for call in calls] == ["get_weather"]
    assert isinstance(calls[0].function.arguments, dict)
    assert_final_counts(parts[-1])


def test_listing_names_the_provider_model(client):
    assert MODEL in [model.model for model in client.list().models]


def test_openai_chat_whole_with_usage(openai_client):
    answer = openai_client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, max_tokens=24)
    assert answer.object == "chat.completion" and answer.model == MODEL
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = answer.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_chat_stream_with_usage(openai_client):
    chunks = list(openai_client.chat.completions.create(
        model=MODEL, messages=HELLO, temperature=0, max_tokens=24, stream=True,
        stream_options={"include_usage": True}))
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == MODEL for chunk in chunks)
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(texts) > 3
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.prompt_tokens > 0


def test_openai_tool_call(openai_client):
    messages = [*TOOL_HISTORY[:2], {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        TOOL_HISTORY[3]]
    answer = openai_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                                   temperature=0, max_tokens=64)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert isinstance(json.loads(call.function.arguments).get("city"), str)


def test_tool_result_goes_back_to_the_model(client):
    call = client.chat(model=MODEL, messages=TOOL_HISTORY, tools=[WEATHER_TOOL], options=TOOL_GREEDY).message
    history = [*TOOL_HISTORY, {"role": "assistant", "content": "", "tool_calls": call.tool_calls},
               {"role": "tool", "tool_name": "get_weather", "content": "12 degrees, rain"}]
    answer = client.chat(model=MODEL, messages=history, tools=[WEATHER_TOOL], options=TOOL_GREEDY)
    assert answer.message.role == "assistant"
    assert answer.message.content or answer.message.tool_calls
    assert_final_counts(answer)


def test_embed(client):
    answer = client.embed(model=MODEL, input=["hello", "a longer sentence to embed"])
    assert answer.model == MODEL
    assert len(answer.embeddings) == 2
    assert len(answer.embeddings[0]) == len(answer.embeddings[1]) > 100
    assert answer.embeddings[0] != answer.embeddings[1]
    assert answer.prompt_eval_count > 0


def test_access_log_has_the_route_and_tokens_but_never_the_key(lab_proxy):
    body = {"model": MODEL, "messages": HELLO, "options": GREEDY, "stream": False}
    answer = requests.post(lab_proxy.url + "/api/chat", json=body, headers=auth(GENERATE), timeout=60)
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-Id"]
    deadline = time.monotonic() + 10
    while not (lines := [json.loads(line) for line in lab_proxy.access_lines() if request_id in line]):
        assert time.monotonic() < deadline, "no access line for the request"
        time.sleep(0.05)
    record = lines[0]
    assert (record["model"], record["backend"], record["upstream_model"]) == (MODEL, "lab", MODEL_NAME)
    assert record["prompt_tokens"] == answer.json()["prompt_eval_count"] > 0
    assert record["completion_tokens"] == answer.json()["eval_count"] > 0
    logs = "".join(path.read_text() for path in lab_proxy.log_dir.iterdir())
    assert LAB_KEY not in logs + lab_proxy.stderr()
