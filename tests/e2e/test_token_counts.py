"""count_tokens and Anthropic usage through the real server: the learnt correction, and report_context.

The fake model counts its prompt as a tokenizer would (``prompt_tokens="template"``), which is
not what the proxy estimates: its answers teach the proxy the difference. One worker, since each
worker learns from the answers it relays.
"""

from __future__ import annotations

import inspect
import json
import textwrap

import anthropic
import pytest
import requests

from ollama_proxy.translate.anthropic.tokens import count_tokens
from tests.e2e.conftest import GENERATE, base_config

SYSTEM = "You are a careful assistant. Answer in short sentences and show code when it helps."
SOURCE = inspect.getsource(textwrap).splitlines()
HELLO = [{"role": "user", "content": "hello"}]
HEADERS = {"x-api-key": GENERATE, "anthropic-version": "2023-06-01"}


def conversation(turns: int) -> list[dict]:
    """Return a conversation about textwrap's source that grows by a question and an answer a turn."""
    messages = []
    for turn in range(turns):
        part = "\n".join(SOURCE[turn * 40:(turn + 1) * 40])
        messages += [{"role": "user", "content": f"Question {turn}: what does this part of textwrap do?\n\n{part}"},
                     {"role": "assistant", "content": f"Part {turn} wraps and fills paragraphs; it splits words "
                                                      "on whitespace and hyphens."}]
    return messages + [{"role": "user", "content": "And the next part?"}]


def streamed_usage(url: str, body: dict) -> tuple[int, int]:
    """Return the input_tokens of a stream's message_start and of its message_delta."""
    with requests.post(url + "/v1/messages", json={**body, "stream": True}, headers=HEADERS, stream=True,
                       timeout=30) as answer:
        assert answer.status_code == 200
        events = [json.loads(line[len("data: "):]) for line in answer.iter_lines(decode_unicode=True)
                  if line.startswith("data: ")]
    start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]["input_tokens"]
    end = next(e for e in events if e["type"] == "message_delta")["usage"]["input_tokens"]
    return start, end


@pytest.fixture
def client_of():
    clients = []

    def client(proxy) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE, max_retries=0))
        return clients[-1]
    yield client
    for made in clients:
        made.close()


def test_count_tokens_and_usage_follow_the_learnt_correction(start_proxy, fake, client_of):
    proxy = start_proxy(base_config(fake.url), workers=1)
    fake.script("llama3.2:latest", reply="ok", prompt_tokens="template")
    client = client_of(proxy)
    first = conversation(1)
    estimated = client.messages.count_tokens(model="llama3.2", system=SYSTEM, messages=first).input_tokens
    assert estimated == count_tokens({"system": SYSTEM, "messages": first})  # nothing learnt yet

    counted = client.messages.create(model="llama3.2", max_tokens=8, system=SYSTEM, messages=first).usage.input_tokens
    assert abs(estimated - counted) > 0.1 * counted  # the fake's tokenizer is not the estimate's
    assert client.messages.count_tokens(model="llama3.2", system=SYSTEM, messages=first).input_tokens == counted

    for turns in (2, 3, 4):
        body = {"model": "llama3.2", "max_tokens": 8, "system": SYSTEM, "messages": conversation(turns)}
        corrected = client.messages.count_tokens(model="llama3.2", system=SYSTEM,
                                                 messages=body["messages"]).input_tokens
        start, counted = streamed_usage(proxy.url, body)
        assert start == corrected  # before Ollama counts, the stream says what count_tokens said
        raw = count_tokens(body)
        assert abs(corrected - counted) < abs(raw - counted), (turns, raw, corrected, counted)
        assert abs(corrected - counted) < 0.07 * counted


REPORT = 200000
NUM_CTX = 8192


def test_report_context_scales_what_clients_read_and_not_the_records(start_proxy, fake, client_of):
    config = base_config(fake.url)
    config["models"] = {"overrides": {"llama3.2": {"defaults": {"num_ctx": NUM_CTX}, "report_context": REPORT}}}
    proxy = start_proxy(config)
    client = client_of(proxy)
    body = {"system": "Be brief.", "messages": HELLO}
    scaled = round(count_tokens(body) * REPORT / NUM_CTX)
    assert client.messages.count_tokens(model="llama3.2", **body).input_tokens == scaled

    raw = client.messages.with_raw_response.create(model="llama3.2", max_tokens=8, **body)
    assert raw.parse().usage.input_tokens == round(3 * REPORT / NUM_CTX)  # the fake counts 3 words
    assert fake.last("/api/chat").json["options"]["num_ctx"] == NUM_CTX
    assert proxy.access_entry(raw.headers["x-request-id"])["prompt_tokens"] == 3  # the records are real

    assert streamed_usage(proxy.url, {"model": "llama3.2", "max_tokens": 8, **body}) == \
        (scaled, round(3 * REPORT / NUM_CTX))
    other = client.messages.create(model="qwen3:8b", max_tokens=8, **body)
    assert other.usage.input_tokens == 3  # a model without report_context reports real tokens
