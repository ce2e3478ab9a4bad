"""Provider models through the proxy: named by prefix, served on every surface, listed with the rest."""

from __future__ import annotations

import anthropic
import ollama
import openai
import pytest
import requests

from tests.e2e.conftest import GENERATE, MANAGE, auth, base_config
from tests.e2e.server import ProxyServer
from tests.fakes.openai_provider import PROVIDER_KEY


@pytest.fixture(scope="module")
def proxy(fake_server, provider_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["backends"] = [{"name": "lab", "type": "openai", "base_url": provider_server.base_url,
                           "api_key_env": "LAB_KEY", "models": ["fake-chat", "fake-embed"]}]
    server = ProxyServer(config, tmp_path_factory.mktemp("providers"), env={"LAB_KEY": PROVIDER_KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def fakes(fake, provider):
    return fake, provider


def test_native_chat_with_a_provider_model(proxy, fakes):
    ollama_fake, provider = fakes
    with ollama.Client(host=proxy.url, headers={**auth(), "X-Request-Id": "native-provider-chat"}) as client:
        reply = client.chat(model="lab:fake-chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "You said: hi"
    assert provider.last("/v1/chat/completions").json["model"] == "fake-chat"
    assert provider.last("/v1/chat/completions").headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [r for r in ollama_fake.requests if r.path == "/api/chat"]
    record = proxy.access_entry("native-provider-chat")
    assert (record["backend"], record["upstream_model"], record["model"]) == ("lab", "fake-chat", "lab:fake-chat")
    assert PROVIDER_KEY not in "".join(proxy.access_lines())


def test_openai_surface_passes_a_provider_request_through(proxy, fakes):
    provider = fakes[1]
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        whole = client.chat.completions.create(model="lab/fake-chat", messages=[{"role": "user", "content": "hi"}],
                                               extra_body={"top_k": 5})
        stream = client.chat.completions.create(model="lab/fake-chat", stream=True,
                                                messages=[{"role": "user", "content": "yo"}],
                                                extra_headers={"X-Request-Id": "openai-provider-stream"})
        chunks = list(stream)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert chunks and {chunk.model for chunk in chunks} == {"lab/fake-chat"}
    assert whole.choices[0].message.content == "You said: hi"
    assert text == "You said: yo"
    assert whole.model == "lab/fake-chat"  # the name the client used, not the provider's
    sent = provider.calls("/v1/chat/completions")[0].json
    assert sent["model"] == "fake-chat" and sent["top_k"] == 5  # fields the proxy does not know go on
    assert provider.calls("/v1/chat/completions")[1].json["stream_options"] == {"include_usage": True}
    record = proxy.access_entry("openai-provider-stream")
    assert record["backend"] == "lab" and record["prompt_tokens"]


def test_anthropic_surface_on_a_provider_model(proxy, fakes):
    with anthropic.Anthropic(base_url=proxy.url, api_key=GENERATE, max_retries=0) as client:
        message = client.messages.create(model="lab:fake-chat", max_tokens=20,
                                         messages=[{"role": "user", "content": "hey"}])
    assert message.content[0].text == "You said: hey"
    assert fakes[1].last("/v1/chat/completions").json["model"] == "fake-chat"


def test_listings_merge_ollama_and_provider_models(proxy, fakes):
    with ollama.Client(host=proxy.url, headers=auth()) as client:
        names = [m.model for m in client.list().models]
    assert names[-2:] == ["lab:fake-chat", "lab:fake-embed"]
    assert "llama3.2:latest" in names and len(names) == len(set(names))
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE) as client:
        ids = [m.id for m in client.models.list()]
    assert ids == names


def test_management_refuses_provider_models(proxy, fakes):
    pulled = requests.post(proxy.url + "/api/pull", headers=auth(MANAGE), json={"model": "lab:fake-chat"})
    assert pulled.status_code == 400 and "provider 'lab'" in pulled.json()["error"]
    on_lab = requests.post(proxy.url + "/api/pull", headers={**auth(MANAGE), "X-Ollama-Server": "lab"},
                           json={"model": "llama3.2"})
    assert on_lab.status_code == 400 and "'lab' is a provider" in on_lab.json()["error"]


def test_health_lists_the_provider_without_calling_it(proxy, fakes):
    health = requests.get(proxy.url + "/health", headers=auth())
    assert health.status_code == 200
    lab = health.json()["upstreams"][1]
    assert (lab["name"], lab["type"], lab["state"], lab["models"]) == ("lab", "openai", "configured", 2)
    assert not fakes[1].requests
