"""The official ollama JavaScript client (npm ``ollama``) on the native API: tests/js/ollama_client.mjs."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e import js_clients
from tests.e2e.conftest import GENERATE, MANAGE, auth
from tests.e2e.server import wait_for

SCRIPT = "ollama_client.mjs"
REPLY = "The sky is blue because of Rayleigh scattering."
OSLO_CALL = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}


@pytest.fixture(scope="module")
def node():
    return js_clients.install()


@pytest.fixture
def clients(node, proxy):
    return js_clients.Clients(node, proxy, GENERATE)


def test_chat(clients, fake):
    fake.script("llama3.2", reply=REPLY)
    answer = clients.run(SCRIPT, "chat")
    assert answer["message"] == {"role": "assistant", "content": REPLY}
    assert answer["done"] and answer["done_reason"] == "stop"
    assert answer["eval_count"] == len(REPLY.split()) and answer["prompt_eval_count"] > 0
    assert fake.last("/api/chat").json["stream"] is False


def test_chat_stream(clients, fake):
    fake.script("llama3.2", reply=REPLY)
    parts = clients.run(SCRIPT, "chatStream")
    assert "".join(part["message"]["content"] for part in parts) == REPLY
    assert len(parts) == len(REPLY.split()) + 1, "one part a token, then the done object"
    assert parts[-1]["done"] and parts[-1]["done_reason"] == "stop" and parts[-1]["eval_count"] == len(parts) - 1


def test_an_error_mid_stream_is_thrown_with_the_upstreams_message(clients, fake):
    fake.script("llama3.2", reply="one two three four", error_after=2, error_message="the runner crashed")
    answer = clients.run(SCRIPT, "streamError")
    assert answer == {"parts": ["one ", "two "], "error": {"name": "Error", "message": "the runner crashed",
                                                          "status": None}}


def test_generate_whole_and_streamed(clients, fake):
    fake.script("llama3.2", reply="one two three")
    answer = clients.run(SCRIPT, "generate")
    assert answer["whole"]["response"] == "one two three" and answer["whole"]["done"]
    assert answer["parts"][:3] == ["one ", "two ", "three"] and "".join(answer["parts"]) == "one two three"


def test_embed(clients, fake):
    answer = clients.run(SCRIPT, "embed")
    texts = ["first text", "second text"]
    expected = requests.post(fake.url + "/api/embed", json={"model": "all-minilm", "input": texts})
    assert answer["embeddings"] == expected.json()["embeddings"]
    assert answer["model"] == "all-minilm" and answer["prompt_eval_count"] == 4


def test_list_show_and_ps(clients, fake):
    answer = clients.run(SCRIPT, "listings")
    assert [model["name"] for model in answer["list"]["models"]] == list(fake.models)
    assert "thinking" in answer["show"]["capabilities"] and answer["show"]["details"]["family"] == "qwen3"
    assert [model["name"] for model in answer["ps"]["models"]] == ["qwen3:8b"]


def test_pull_progress_streams_with_a_manage_token(clients, fake):
    progress = clients.with_token(MANAGE).run(SCRIPT, "pull")
    assert progress[0]["status"] == "pulling manifest" and progress[-1]["status"] == "success"
    assert any(part.get("completed") for part in progress)
    assert "tinyllama:latest" in fake.models


def test_tool_call_and_its_result(clients, fake):
    fake.script("llama3.2", reply="", tool_calls=[OSLO_CALL], reply_to_tool_result="It is sunny in Oslo.")
    answer = clients.run(SCRIPT, "tools")
    assert answer["first"]["tool_calls"] == [OSLO_CALL]
    assert answer["second"] == {"role": "assistant", "content": "It is sunny in Oslo."}
    sent = fake.last("/api/chat").json["messages"]
    assert [message["role"] for message in sent] == ["user", "assistant", "tool"]
    assert sent[-1]["tool_name"] == "get_weather"
    assert json.loads(sent[-1]["content"]) == {"city": "Oslo", "sky": "sunny"}


def test_errors_carry_the_proxys_message_and_status(clients, proxy):
    refused = clients.with_token("not-a-token").run(SCRIPT, "error", "llama3.2")
    said = requests.post(proxy.url + "/api/chat", headers=auth("not-a-token"), json={"model": "llama3.2"})
    assert refused == {"name": "ResponseError", "message": said.json()["error"], "status": 401}
    missing = clients.run(SCRIPT, "error", "no-such-model")
    assert missing == {"name": "ResponseError", "message": 'model "no-such-model" not found, try pulling it first',
                       "status": 404}


def test_an_aborted_stream_is_the_client_leaving(clients, proxy, fake):
    fake.script("llama3.2", reply=" ".join(["tok"] * 400), chunk_delay=0.05)
    logged = len(proxy.access_lines())
    answer = clients.run(SCRIPT, "abort", "3")
    # A part already read from the socket may still come out after the abort.
    assert set(answer["parts"]) == {"tok "} and 3 <= len(answer["parts"]) < 400
    assert answer["error"]["name"] == "AbortError"
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None)
    assert fake.streams[-1].aborted and not fake.streams[-1].completed
    assert fake.streams[-1].chunks_sent < 400

    def aborted_entries() -> list[dict]:
        entries = [json.loads(line) for line in proxy.access_lines()[logged:]]
        return [entry for entry in entries if entry["path"] == "/api/chat" and entry["aborted"]]
    assert wait_for(aborted_entries, timeout=5), proxy.access_lines()[logged:]
    assert aborted_entries()[0]["status"] == 200 and aborted_entries()[0]["model"] == "llama3.2"
