"""A model's capabilities: the fake Ollama's /api/show, kept per server and model; or a provider's facts."""

from __future__ import annotations

import pytest

from ollama_proxy.backends.capabilities import ModelCapabilities
from ollama_proxy.backends.openai_compat import ProviderBackend
from ollama_proxy.backends.pool import OllamaPool
from ollama_proxy.config import parse_settings
from ollama_proxy.dispatch.dispatcher import Dispatcher
from ollama_proxy.scheduler.transport.admission import Requester
from tests.fakes.clock import ManualClock


def _settings(base_url: str, **routing):
    return parse_settings({"service": {"base_url": base_url, "scheduling": False}, "routing": routing,
                           "backends": [{"name": "cloud", "type": "openai", "base_url": "http://127.0.0.1:9/v1",
                                         "api_key_env": "CLOUD_KEY", "models": ["r1", "v3", "plain"],
                                         "model_facts": {"r1": {"capabilities": ["completion", "thinking"]},
                                                         "v3": {"capabilities": ["completion", "tools"]},
                                                         "plain": {"context_length": 8192}}}]},
                          environ={"CLOUD_KEY": "k"})


def _on_ollama(pool, model: str):
    """A route's backend for an Ollama model."""
    return Dispatcher(pool, None, 60.0).for_model(model, who=Requester())


@pytest.fixture
def clock():
    return ManualClock()


def _ollama(tmp_path, base_url: str, clock: ManualClock, **routing):
    settings = _settings(base_url, **routing)
    pool = OllamaPool(settings.service, settings.ollama_servers, settings.routing, str(tmp_path))
    return ModelCapabilities(settings.routing, clock), pool


def test_an_ollama_models_capabilities_are_its_servers_show(tmp_path, fake, clock):
    capabilities, pool = _ollama(tmp_path, fake.url, clock)
    assert capabilities.of(_on_ollama(pool, "llama3.2"), "llama3.2") == {"completion", "tools"}
    assert capabilities.of(_on_ollama(pool, "qwen3:8b"), "qwen3:8b") == {"completion", "tools", "thinking"}
    assert [call.json["model"] for call in fake.calls("/api/show")] == ["llama3.2", "qwen3:8b"]


def test_they_are_kept_per_server_and_model_for_the_setting(tmp_path, fake, clock):
    capabilities, pool = _ollama(tmp_path, fake.url, clock, capabilities_cache_seconds=60)
    target = _on_ollama(pool, "llama3.2")
    for _ in range(3):
        assert "thinking" not in capabilities.of(target, "llama3.2")
    assert capabilities.of(target, "llama3.2:latest") == {"completion", "tools"}  # one model, however spelled
    assert len(fake.calls("/api/show")) == 1
    fake.capabilities["llama3.2:latest"].append("thinking")  # the model replaced by one that thinks
    clock.advance(59)
    assert "thinking" not in capabilities.of(target, "llama3.2")
    clock.advance(1)
    assert "thinking" in capabilities.of(target, "llama3.2")
    assert len(fake.calls("/api/show")) == 2


def test_zero_seconds_reads_them_each_time(tmp_path, fake, clock):
    capabilities, pool = _ollama(tmp_path, fake.url, clock, capabilities_cache_seconds=0)
    for _ in range(2):
        capabilities.of(_on_ollama(pool, "llama3.2"), "llama3.2")
    assert len(fake.calls("/api/show")) == 2


def test_a_model_the_server_lacks_is_unknown_and_asked_again(tmp_path, fake, clock):
    capabilities, pool = _ollama(tmp_path, fake.url, clock)
    assert capabilities.of(_on_ollama(pool, "nosuch"), "nosuch") is None
    assert capabilities.of(_on_ollama(pool, "nosuch"), "nosuch") is None
    assert len(fake.calls("/api/show")) == 2  # a failure is not kept: the model may be pulled meanwhile


def test_a_server_that_cannot_be_reached_leaves_them_unknown(tmp_path, clock):
    capabilities, pool = _ollama(tmp_path, "http://127.0.0.1:9", clock)  # the discard port: nothing listens
    assert capabilities.of(_on_ollama(pool, "llama3.2"), "llama3.2") is None


def test_an_ollama_that_does_not_show_capabilities_leaves_them_unknown(tmp_path, fake, clock):
    capabilities, pool = _ollama(tmp_path, fake.url, clock)

    class OldAnswer:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def raise_for_error(self):
            pass

        def json(self):
            return {"modelfile": "", "details": {}}
    pool.default.backend.open = lambda *args, **kwargs: OldAnswer()
    assert capabilities.of(_on_ollama(pool, "llama3.2"), "llama3.2") is None


@pytest.mark.parametrize(("model", "expected"), [
    ("r1", {"completion", "thinking"}),
    ("v3", {"completion", "tools"}),
    pytest.param("plain", None, id="facts without capabilities: unknown"),
    pytest.param("other", None, id="no facts: unknown"),
])
def test_a_provider_models_capabilities_are_its_configured_facts(model, expected, clock):
    settings = _settings("http://127.0.0.1:11434")
    provider = ProviderBackend(settings.providers[0], settings.retry)
    assert ModelCapabilities(settings.routing, clock).of(provider, model) == expected
