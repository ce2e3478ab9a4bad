"""Tests of the fake OpenAI-compatible provider that the gateway's end-to-end tests run against."""

import json

import requests

from tests.fakes.openai_provider import PROVIDER_KEY


def post(provider, path, body, **headers):
    return requests.post(provider.base_url + path.removeprefix("/v1"), data=json.dumps(body), timeout=5,
                         headers={"Authorization": f"Bearer {PROVIDER_KEY}", "Content-Type": "application/json",
                                  **headers})


def test_a_chat_body_is_read_as_a_go_provider_reads_it(provider):
    body = {"model": "fake-reasoner", "MODEL": "fake-chat", "Stream": True,
            "stream_options": {"include_usage": True, "INCLUDE_USAGE": False},
            "messages": [{"role": "user", "CONTENT": "hi"}], "extra": 1}
    answer = post(provider, "/v1/chat/completions", body)
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert b'"usage"' not in answer.content  # the last include_usage, in any case, said no
    assert provider.last("/v1/chat/completions").json == {
        "model": "fake-chat", "stream": True, "stream_options": {"include_usage": False},
        "messages": [{"role": "user", "content": "hi"}], "extra": 1}


def test_an_embeddings_body_is_read_as_a_go_provider_reads_it(provider):
    post(provider, "/v1/embeddings", {"model": "fake-embed", "Input": ["a"], "DIMENSIONS": 2})
    assert provider.last("/v1/embeddings").json == {"model": "fake-embed", "input": ["a"], "dimensions": 2}


def test_scripted_headers_and_an_error_that_echoes_the_credentials(provider):
    provider.script("fake-chat", headers={"X-Request-Id": "req_1"})
    whole = post(provider, "/v1/chat/completions",
                 {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]})
    assert whole.headers["X-Request-Id"] == "req_1"
    provider.script("fake-chat", fail_status=400, echo_credentials=True)
    failed = post(provider, "/v1/chat/completions", {"model": "fake-chat", "messages": []}, **{"OpenAI-Project": "p1"})
    assert failed.json()["error"]["message"] == (
        f"scripted failure 400 (you sent Authorization: Bearer {PROVIDER_KEY}; OpenAI-Project: p1)")


def test_an_error_event_mid_stream(provider):
    provider.script("fake-chat", content="abcdefgh", fragment_size=2, error_after=2)
    answer = post(provider, "/v1/chat/completions", {"model": "fake-chat", "stream": True,
                                                     "messages": [{"role": "user", "content": "x"}]})
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
    assert len(events) == 3 and events[-1] == {"error": {"message": "scripted failure mid-stream",
                                                         "type": "server_error"}}
