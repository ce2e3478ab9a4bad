"""The n streams behind one request with n choices share one upstream body."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from ollama_proxy.backends.ollama import PoolTarget
from ollama_proxy.relay.translated import open_streams
from ollama_proxy.routing.routes import Route

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


class Upstream:
    waited = 0.0
    server = "box"

    def raise_for_error(self) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingPool:
    """Keeps the body of every request PoolTarget opens on it."""

    def __init__(self):
        self.sent = []

    def open(self, model, method, path, **request):
        self.sent.append(request["body"])
        return Upstream()


class RecordingProvider:
    """A provider backend: takes the Ollama body as a dict, to translate it itself."""

    name = "deepseek"

    def __init__(self):
        self.sent = []

    @staticmethod
    def encode(body):
        return body

    def post_json(self, path, body, model_label=None):
        self.sent.append(body)
        return Upstream()


@pytest.fixture(autouse=True)
def request_context():
    with Flask(__name__).test_request_context():
        yield


def test_n_choices_of_an_ollama_model_send_the_bytes_of_one_serialisation(monkeypatch):
    serialised = []
    encode = PoolTarget.encode
    monkeypatch.setattr(PoolTarget, "encode", staticmethod(lambda body: serialised.append(body) or encode(body)))
    pool = RecordingPool()
    route = Route(PoolTarget(pool, "llama3.2:latest"), "llama3.2", "llama3.2:latest")
    assert len(open_streams(route, "/api/chat", CHAT, 3)) == 3
    assert len(serialised) == 1
    assert len(pool.sent) == 3 and all(sent is pool.sent[0] for sent in pool.sent)
    assert json.loads(pool.sent[0]) == {**CHAT, "model": "llama3.2:latest", "stream": True}


def test_n_choices_of_a_provider_model_send_one_body():
    provider = RecordingProvider()
    route = Route(provider, "deepseek:deepseek-chat", "deepseek-chat")
    assert len(open_streams(route, "/api/chat", CHAT, 3)) == 3
    assert len(provider.sent) == 3 and all(sent is provider.sent[0] for sent in provider.sent)
    assert provider.sent[0] == {**CHAT, "model": "deepseek-chat", "stream": True}


def test_one_choice_sends_its_body_once():
    pool = RecordingPool()
    route = Route(PoolTarget(pool, "llama3.2:latest"), "llama3.2", "llama3.2:latest")
    open_streams(route, "/api/chat", CHAT)
    assert [json.loads(sent) for sent in pool.sent] == [{**CHAT, "model": "llama3.2:latest", "stream": True}]
