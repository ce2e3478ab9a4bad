"""Every surface puts the tokens it served on the request's access line (what usage and metrics read)."""

from __future__ import annotations

import json
import time

import anthropic
import ollama
import openai
import requests

from tests.e2e.conftest import GENERATE, auth

REPLY = "one two three four five"  # the fake streams a chunk a word: five tokens


def _tokens(entry: dict) -> tuple:
    return entry["prompt_tokens"], entry["completion_tokens"], entry["backend"], entry["upstream_model"]


def test_native_stream_and_whole_answer_carry_ollamas_exact_counts(proxy, fake):
    fake.script("llama3.2:latest", reply=REPLY)
    for stream in (True, False):
        answer = requests.post(proxy.url + "/api/chat", headers=auth(), json={
            "model": "llama3.2", "stream": stream, "messages": [{"role": "user", "content": "count to five"}]})
        entry = proxy.access_entry(answer.headers["X-Request-Id"])
        assert _tokens(entry) == (3, 5, "default", "llama3.2"), stream
        if stream:  # a whole answer has no first token of its own
            assert entry["ttft_ms"] is not None and entry["ttft_ms"] <= entry["duration_ms"]


def test_openai_and_anthropic_surfaces_count_the_same_answer(proxy, fake):
    fake.script("llama3.2:latest", reply=REPLY)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE)
    raw = client.chat.completions.with_raw_response.create(
        model="llama3.2", messages=[{"role": "user", "content": "count to five"}], stream=True)
    list(raw.parse())
    assert _tokens(proxy.access_entry(raw.headers["x-request-id"])) == (3, 5, "default", "llama3.2")

    claude = anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE)
    raw = claude.messages.with_raw_response.create(
        model="llama3.2", max_tokens=50, messages=[{"role": "user", "content": "count to five"}])
    entry = proxy.access_entry(raw.headers["x-request-id"])
    assert _tokens(entry) == (3, 5, "default", "llama3.2") and entry["ttft_ms"] is not None


def test_openai_n_side_by_side_sums_the_answers(proxy, fake):
    fake.script("llama3.2:latest", reply=REPLY)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE)
    raw = client.chat.completions.with_raw_response.create(
        model="llama3.2", n=3, messages=[{"role": "user", "content": "count to five"}])
    assert _tokens(proxy.access_entry(raw.headers["x-request-id"])) == (9, 15, "default", "llama3.2")


def test_embeddings_count_their_input(proxy, fake):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE)
    raw = client.embeddings.with_raw_response.create(model="all-minilm", input=["one two", "three"])
    prompt, completion, backend, model = _tokens(proxy.access_entry(raw.headers["x-request-id"]))
    assert prompt and prompt > 0 and completion is None and (backend, model) == ("default", "all-minilm")


def test_a_stream_left_half_way_keeps_the_tokens_seen(proxy, fake):
    fake.script("llama3.2:latest", reply=" ".join(f"w{i}" for i in range(40)), chunk_delay=0.05)
    before = len(proxy.access_lines())  # the session's proxy: other tests' streams were left before this one
    with ollama.Client(host=proxy.url, headers=auth()) as client:
        parts = client.chat(model="llama3.2", messages=[{"role": "user", "content": "go"}], stream=True)
        received = [next(parts) for _ in range(4)]
        parts.close()
    assert len(received) == 4
    fake.wait_for(lambda: fake.streams[-1].closed_at is not None, timeout=5)
    deadline = time.monotonic() + 5
    entries = []
    while not entries and time.monotonic() < deadline:
        entries = [json.loads(line) for line in proxy.access_lines()[before:]
                   if '"aborted": true' in line and '"path": "/api/chat"' in line]
        time.sleep(0.05)
    assert entries, proxy.access_lines()[-3:]
    entry = entries[-1]
    assert entry["prompt_tokens"] and entry["prompt_tokens"] > 0  # the done chunk never came: the proxy's estimate
    assert 4 <= entry["completion_tokens"] < 40
