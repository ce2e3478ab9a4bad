"""The n streams behind one request with n choices share one upstream body."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.dispatch.dispatcher import OllamaModel
from ollama_proxy.relay.translated import open_streams
from ollama_proxy.routing.routes import Route
from ollama_proxy.scheduler.transport.admission import Requester

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


class Upstream:
    waited = 0.0
    server = "box"

    def raise_for_error(self) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingDispatcher:
    """Keeps the bytes of every request a model's backend sends through it."""

    pool = None

    def __init__(self):
        self.sent = []

    def send(self, model, method, path, who, body=None, **request):
        self.sent.append(body.encoded() if isinstance(body, OllamaBody) else body)
        return Upstream()


def _ollama_route(dispatcher) -> Route:
    return Route(OllamaModel(dispatcher, "llama3.2:latest", Requester()), "llama3.2", "llama3.2:latest")


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
    encode = OllamaModel.encode
    monkeypatch.setattr(OllamaModel, "encode", staticmethod(lambda body: serialised.append(body) or encode(body)))
    pool = RecordingDispatcher()
    route = _ollama_route(pool)
    assert len(open_streams(route, "/api/chat", CHAT, 3)) == 3
    assert len(serialised) == 1
    assert len(pool.sent) == 3 and all(sent is pool.sent[0] for sent in pool.sent)
    assert json.loads(pool.sent[0]) == {**CHAT, "model": "llama3.2:latest", "stream": True}


def test_n_choices_of_a_provider_model_send_one_body():
    provider = RecordingProvider()
    route = Route(provider, "deepseek:deepseek-chat", "deepseek-chat", to_provider=True)
    assert len(open_streams(route, "/api/chat", CHAT, 3)) == 3
    assert len(provider.sent) == 3 and all(sent is provider.sent[0] for sent in provider.sent)
    assert provider.sent[0] == {**CHAT, "model": "deepseek-chat", "stream": True}


def test_one_choice_sends_its_body_once():
    pool = RecordingDispatcher()
    route = _ollama_route(pool)
    open_streams(route, "/api/chat", CHAT)
    assert [json.loads(sent) for sent in pool.sent] == [{**CHAT, "model": "llama3.2:latest", "stream": True}]
