"""The Vercel AI SDK (npm ``ai``) through its providers, run by Node.js: tests/js/ai_sdk.mjs.

``@ai-sdk/openai`` on chat completions (``openai.chat``) and on the Responses API
(``openai.responses``), ``@ai-sdk/openai-compatible`` on chat completions, ``@ai-sdk/anthropic``
on ``/v1/messages`` and the community ``ollama-ai-provider-v2`` on the native ``/api/chat`` and
``/api/embed``.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e import js_clients
from tests.e2e.conftest import GENERATE
from tests.e2e.server import wait_for

SCRIPT = "ai_sdk.mjs"
SURFACES = ["chat", "responses", "compatible", "anthropic", "ollama"]
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "compatible": "/v1/chat/completions",
         "anthropic": "/v1/messages", "ollama": "/api/chat"}
MAX_TOKENS = 64  # what every scenario asks for as maxOutputTokens (the Ollama provider: as num_predict)
REPLY = "The sky is blue because of Rayleigh scattering."
QUESTION_WORDS = 5  # "why is the sky blue?": what the fake counts as prompt tokens
ADA = {"name": "Ada", "age": 36}
OSLO_CALL = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
SUNNY = "It is sunny in Oslo."
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="  # 1x1
THINK = {"responses": "low", "compatible": "low", "anthropic": True, "ollama": True}  # as each provider asks


@pytest.fixture(scope="module")
def node():
    return js_clients.install()


@pytest.fixture
def clients(node, proxy):
    return js_clients.Clients(node, proxy, GENERATE)


@pytest.mark.parametrize("surface", SURFACES)
def test_generate_text(clients, fake, surface):
    fake.script("llama3.2", reply=REPLY)
    answer = clients.run(SCRIPT, "generateText", surface)
    assert answer["text"] == REPLY and answer["finishReason"] == "stop"
    assert answer["usage"]["inputTokens"] == QUESTION_WORDS
    assert answer["usage"]["outputTokens"] == len(REPLY.split())
    assert fake.last("/api/chat").json["options"]["num_predict"] == MAX_TOKENS


@pytest.mark.parametrize("surface", SURFACES)
def test_stream_text(clients, fake, surface):
    fake.script("llama3.2", reply=REPLY)
    answer = clients.run(SCRIPT, "streamText", surface)
    assert answer["error"] is None
    assert answer["parts"] == [word + " " for word in REPLY.split()[:-1]] + [REPLY.split()[-1]], "token by token"
    assert answer["finishReason"] == "stop"
    assert answer["usage"]["outputTokens"] == len(REPLY.split())
    assert fake.last("/api/chat").json["stream"] is True


@pytest.mark.parametrize("surface", ["chat", "responses", "compatible", "ollama"])
def test_structured_output_is_ollamas_format(clients, fake, surface):
    fake.script("qwen3:8b", reply=json.dumps(ADA))
    answer = clients.run(SCRIPT, "object", surface)
    assert answer == {"object": ADA, "output": ADA}
    for sent in fake.calls("/api/chat"):
        assert sent.json["format"]["properties"] == {"name": {"type": "string"}, "age": {"type": "number"}}


def test_anthropic_structured_output_as_output_format(clients, fake):
    """With structuredOutputMode 'outputFormat' the schema reaches Ollama as ``format``: decoding is held to it."""
    fake.script("qwen3:8b", reply=json.dumps(ADA))
    answer = clients.run(SCRIPT, "object", "anthropic", "outputFormat")
    assert answer == {"object": ADA, "output": ADA}
    for sent in fake.calls("/api/chat"):
        assert sent.json["format"]["properties"] == {"name": {"type": "string"}, "age": {"type": "number"}}
        assert "tools" not in sent.json


def test_anthropic_structured_output_by_default_asks_for_a_json_tool(clients, fake):
    """For a model it does not know, the Anthropic provider forces a ``json`` tool; Ollama cannot force it."""
    fake.script("qwen3:8b", reply="", tool_calls=[{"function": {"name": "json", "arguments": ADA}}])
    answer = clients.run(SCRIPT, "object", "anthropic")
    assert answer == {"object": ADA, "output": ADA}
    for sent in fake.calls("/api/chat"):
        assert [tool["function"]["name"] for tool in sent.json["tools"]] == ["json"]
        assert "format" not in sent.json


@pytest.mark.parametrize("scenario", ["tools", "streamTools"])
@pytest.mark.parametrize("surface", SURFACES)
def test_tool_call_and_its_result(clients, fake, surface, scenario):
    fake.script("llama3.2", reply="", tool_calls=[OSLO_CALL], reply_to_tool_result=SUNNY)
    answer = clients.run(SCRIPT, scenario, surface)
    first, second = answer["steps"]
    assert first["toolCalls"] == [{"name": "get_weather", "input": {"city": "Oslo"}}]
    assert first["toolResults"] == [{"city": "Oslo", "sky": "sunny"}] and first["finishReason"] == "tool-calls"
    assert second["toolCalls"] == [] and second["finishReason"] == "stop"
    assert answer["text"] == SUNNY
    asked, answered = fake.calls("/api/chat")
    assert [tool["function"]["name"] for tool in asked.json["tools"]] == ["get_weather"]
    assert [message["role"] for message in answered.json["messages"]] == ["user", "assistant", "tool"]
    assert answered.json["messages"][1]["tool_calls"][0]["function"] == OSLO_CALL["function"]
    assert json.loads(answered.json["messages"][2]["content"]) == {"city": "Oslo", "sky": "sunny"}


@pytest.mark.parametrize("surface", SURFACES)
def test_an_image_reaches_ollama(clients, fake, surface):
    assert clients.run(SCRIPT, "image", surface) == "You said: What is this?"
    sent = fake.last("/api/chat").json["messages"][-1]
    assert sent["images"] == [PNG_BASE64] and sent["content"] == "What is this?"


# ollama-ai-provider-v2 parses Ollama's {"error": "..."} line as a chunk and fails on it: the
# stream ends with finishReason "other" and the error is only logged.
@pytest.mark.parametrize("surface", ["chat", "responses", "compatible", "anthropic"])
def test_an_error_mid_stream_reaches_the_sdk(clients, fake, surface):
    fake.script("llama3.2", reply="one two three four", error_after=2, error_message="the runner crashed")
    answer = clients.run(SCRIPT, "streamError", surface)
    assert answer == {"parts": ["one ", "two ", {"error": "the runner crashed"}], "finishReason": "error"}


@pytest.mark.parametrize("surface", ["chat", "compatible", "ollama"])
def test_embed(clients, fake, surface):
    answer = clients.run(SCRIPT, "embed", surface)
    texts = ["first text", "second text"]
    expected = requests.post(fake.url + "/api/embed", json={"model": "all-minilm", "input": texts}).json()
    assert len(answer["embeddings"]) == len(texts)
    for got, want in zip(answer["embeddings"], expected["embeddings"], strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    assert answer["embedding"] == pytest.approx(expected["embeddings"][0], rel=1e-6)


# @ai-sdk/openai reads no reasoning from chat completions (OpenAI sends none there); the proxy
# sends it as both reasoning_content and reasoning, which @ai-sdk/openai-compatible reads.
@pytest.mark.parametrize("surface", ["responses", "compatible", "anthropic", "ollama"])
def test_reasoning(clients, fake, surface):
    fake.script("qwen3:8b", thinking="Light scatters.", reply="Blue.")
    answer = clients.run(SCRIPT, "reasoning", surface)
    expected = {"reasoning": "Light scatters.", "text": "Blue."}
    assert answer == {"streamed": expected, "whole": expected}
    assert [sent.json.get("think") for sent in fake.calls("/api/chat")] == [THINK[surface]] * 2


@pytest.mark.parametrize("surface", SURFACES)
def test_a_conversation_sends_the_sdks_own_messages_back(clients, fake, surface):
    store = ["false"] if surface == "responses" else []
    answer = clients.run(SCRIPT, "conversation", surface, *store)
    assert answer == {"texts": ["You said: hello", "You said: and again"], "error": None}
    sent = fake.last("/api/chat").json["messages"]
    assert [(message["role"], message["content"]) for message in sent] == [
        ("user", "hello"), ("assistant", "You said: hello"), ("user", "and again")]


def test_responses_refers_to_stored_items_unless_store_is_false(clients, fake):
    """The provider assumes the server stores responses and sends earlier answers back as references."""
    answer = clients.run(SCRIPT, "conversation", "responses")
    assert answer["texts"] == ["You said: hello"]
    assert answer["error"]["status"] == 400
    assert answer["error"]["message"].startswith("item_reference is not supported: this gateway is stateless")
    assert len(fake.calls("/api/chat")) == 1


@pytest.mark.parametrize("surface", SURFACES)
def test_a_bad_token_is_an_api_call_error_with_the_proxys_message(clients, surface):
    refused = clients.with_token("not-a-token").run(SCRIPT, "error", surface)
    assert refused["name"] == "AI_APICallError" and refused["status"] == 401
    if surface == "ollama":
        # The provider reads only OpenAI-shaped error bodies; Ollama's {"error": "..."} leaves it
        # the HTTP reason phrase, and the proxy's message is in the body it keeps.
        assert json.loads(refused["body"]) == {"error": "invalid token"}
    else:
        assert refused["message"] == "invalid token"


@pytest.mark.parametrize("surface", SURFACES)
def test_an_aborted_stream_is_the_client_leaving(clients, proxy, fake, surface):
    fake.script("llama3.2", reply=" ".join(["tok"] * 400), chunk_delay=0.05)
    logged = len(proxy.access_lines())
    answer = clients.run(SCRIPT, "abort", surface, "3")
    assert answer["aborted"]
    # A part already read from the socket may still come out after the abort.
    assert set(answer["parts"]) == {"tok "} and 3 <= len(answer["parts"]) < 400
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None)
    assert fake.streams[-1].aborted and not fake.streams[-1].completed

    def aborted_entries() -> list[dict]:
        entries = [json.loads(line) for line in proxy.access_lines()[logged:]]
        return [entry for entry in entries if entry["path"] == PATHS[surface] and entry["aborted"]]
    assert wait_for(aborted_entries, timeout=5), proxy.access_lines()[logged:]
    assert aborted_entries()[0]["status"] == 200
