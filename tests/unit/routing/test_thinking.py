"""The thinking a surface asked for, fitted to the routed model: capabilities looked up only when needed."""

from __future__ import annotations

import pytest

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings
from ollama_proxy.routing.routes import resolve
from ollama_proxy.routing.thinking import thinking_for_route
from ollama_proxy.translate.anthropic.request import from_anthropic_messages

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def app(tmp_path, fake):
    settings = parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": f"sqlite:///{tmp_path}/s.db"},
                               "service": {"base_url": fake.url, "scheduling": False},
                               "models": {"aliases": {"claude-sonnet-4-5": "llama3.2"}}}, environ={})
    app = create_app(settings)
    with app.app_context():
        yield app


def fitted(model: str, **fields) -> dict:
    body = {"model": model, "max_tokens": 64, "messages": HI, **fields}
    return thinking_for_route(resolve(model), body, from_anthropic_messages(body))


THINKING = {"thinking": {"type": "enabled", "budget_tokens": 31999}}


def test_an_alias_of_a_model_that_cannot_think_is_sent_no_think(app, fake):
    assert "think" not in fitted("claude-sonnet-4-5", **THINKING)
    assert fake.last("/api/show").json == {"model": "llama3.2"}  # the model the alias names is asked about


def test_a_model_that_can_think_keeps_it(app, fake):
    assert fitted("qwen3:8b", **THINKING)["think"] is True


@pytest.mark.parametrize("fields", [
    pytest.param({}, id="no thinking asked"),
    pytest.param({"thinking": {"type": "disabled"}}, id="thinking off"),
    pytest.param({**THINKING, "think": True}, id="ollama's own think"),
])
def test_capabilities_are_looked_up_only_for_thinking_the_surface_asked_for(app, fake, fields):
    body = fitted("llama3.2", **fields)
    assert body.get("think") == fields.get("think", False if "thinking" in fields else None)
    assert fake.calls("/api/show") == []
