import pytest

from ollama_proxy.access.auth import Principal
from ollama_proxy.errors import Forbidden
from ollama_proxy.routing.names import canonical
from ollama_proxy.routing.routes import ROUTER, Route, Router, body_for

PROVIDERS = {"deepseek": "deepseek-backend", "openrouter": "openrouter-backend"}


class Dispatcher:
    """The Ollama servers' backend for a model, as the dispatcher gives it."""

    @staticmethod
    def for_model(model, read_timeout, enforce):
        return ("ollama", model, read_timeout, enforce)


_ollama = Dispatcher()


class Pool:
    """The Ollama servers, as far as routing asks them: which models they list as run on another host."""

    def __init__(self, *remote: str):
        self.remote = {canonical(name) for name in remote}

    def runs_remotely(self, model: str) -> bool:
        return canonical(model) in self.remote


POOL = Pool("gpt-oss-copy")  # a local copy of a cloud model: Ollama lists it with its remote_host


def test_provider_model_routes_to_the_provider():
    route = Router(POOL, PROVIDERS, _ollama).resolve("openrouter/anthropic/claude-sonnet-4")
    assert route == Route("openrouter-backend", "openrouter/anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4",
                          to_provider=True)


def test_ollama_model_routes_to_the_pool():
    route = Router(POOL, PROVIDERS, _ollama).resolve("hf.co/user/repo:Q4_K_M")
    assert route.backend == ("ollama", "hf.co/user/repo:Q4_K_M", None, {}) and not route.to_provider
    assert route.upstream_model == route.model == "hf.co/user/repo:Q4_K_M"


@pytest.mark.parametrize("model, allowed", [
    ("llama3.2", True), ("llama3.2:latest", True), ("deepseek:deepseek-chat", True),
    ("qwen3:8b", False), ("deepseek:deepseek-reasoner", False),
])
def test_principal_model_access(model, allowed):
    principal = Principal("alice", "generate", ("llama3*", "deepseek:deepseek-chat"))
    router = Router(POOL, PROVIDERS, _ollama)
    if allowed:
        assert router.resolve(model, principal).model == model
    else:
        with pytest.raises(Forbidden, match=f"token 'alice' may not use the model '{model}'"):
            router.resolve(model, principal)


def test_unrestricted_principal_may_use_any_model():
    assert Router(POOL, PROVIDERS, _ollama).resolve("anything", Principal("bob", "generate")).model == "anything"


def test_body_for_renames_only_when_the_upstream_name_differs():
    body = {"model": "deepseek:deepseek-chat", "messages": [], "unknown": 1}
    routed = body_for(Route("b", "deepseek:deepseek-chat", "deepseek-chat"), body)
    assert routed == {"model": "deepseek-chat", "messages": [], "unknown": 1}
    assert body["model"] == "deepseek:deepseek-chat"  # the client's body is not changed
    same = {"model": "llama3.2"}
    assert body_for(Route("b", "llama3.2", "llama3.2"), same) is same


def _models():
    from ollama_proxy.config import parse_settings
    from ollama_proxy.routing.overrides import ModelTable
    settings = parse_settings({"models": {
        "aliases": {"gpt-4o": "llama3.2:latest", "cloud": "openrouter/anthropic/claude-sonnet-4",
                    "big": "gpt-oss:120b-cloud"},
        "overrides": {"llama3.2": {"defaults": {"num_ctx": 8192, "timeout": 900}}},
        "defaults": {"keep_alive": "1h"}}}, environ={}).models
    return ModelTable.merged(settings, {}, {})


def test_an_alias_routes_to_its_model_and_keeps_the_name_asked_for():
    route = Router(POOL, PROVIDERS, _ollama).resolve("gpt-4o", None, _models())
    assert (route.model, route.upstream_model, route.alias) == ("gpt-4o", "llama3.2:latest", True)
    _, model, timeout, _ = route.backend
    assert (model, timeout) == ("llama3.2:latest", (900, "models.overrides.llama3.2.defaults.timeout"))
    assert body_for(route, {"model": "gpt-4o", "options": {"seed": 1}}) == {
        "model": "llama3.2:latest", "keep_alive": "1h", "options": {"seed": 1, "num_ctx": 8192}}


def test_an_alias_of_a_provider_model_routes_to_the_provider():
    route = Router(POOL, PROVIDERS, _ollama).resolve("cloud", None, _models())
    assert (route.backend, route.upstream_model, route.alias) == ("openrouter-backend", "anthropic/claude-sonnet-4",
                                                                  True)


@pytest.mark.parametrize("patterns, model, allowed", [
    (("llama3*",), "gpt-4o", True),
    (("gpt-*",), "gpt-4o", False),  # the alias's own name grants nothing: llama3.2 would run
    (("gpt-*",), "llama3.2", False),
    (("qwen*",), "gpt-4o", False),
    (("openrouter/anthropic/*",), "cloud", True),  # an alias of a provider's model: the provider's name decides
    (("cloud",), "cloud", False),
    (("openrouter/*", "cloud"), "cloud", True),
])
def test_access_through_an_alias(patterns, model, allowed):
    principal = Principal("k", "generate", patterns)
    router = Router(POOL, PROVIDERS, _ollama)
    if allowed:
        assert router.resolve(model, principal, _models()).model == model
    else:
        with pytest.raises(Forbidden):
            router.resolve(model, principal, _models())


@pytest.mark.parametrize("model", ["gpt-oss:120b-cloud", "Kimi-K2:1T-Cloud", "registry.ollama.ai/library/glm-4.6:cloud",
                                   "big", "gpt-oss-copy:latest"])
def test_a_cloud_model_needs_the_cloud_permission(model):
    router = Router(POOL, PROVIDERS, _ollama)
    with pytest.raises(Forbidden, match=r"token 'bob' may not use the cloud model .*ollama\.com.*--allow cloud"):
        router.resolve(model, Principal("bob", "generate"), _models())
    assert router.resolve(model, Principal("ann", "generate", cloud=True), _models()).model == model
    assert router.resolve(model, None, _models()).model == model  # no caller named: nothing to judge


def test_a_cloud_alias_is_named_with_its_model_and_patterns_still_decide():
    router = Router(POOL, PROVIDERS, _ollama)
    with pytest.raises(Forbidden, match=r"'big' \(an alias of 'gpt-oss:120b-cloud'\)"):
        router.resolve("big", Principal("bob", "generate"), _models())
    with pytest.raises(Forbidden, match="may not use the model 'big'"):
        router.resolve("big", Principal("ann", "generate", ("llama3*",), cloud=True), _models())


def test_a_provider_model_tagged_cloud_is_the_provider_s():
    route = Router(POOL, PROVIDERS, _ollama).resolve("openrouter/some/model:cloud", Principal("bob", "generate"))
    assert route.to_provider


def test_a_body_without_overrides_is_the_same_object():
    route = Router(POOL, PROVIDERS, _ollama).resolve("qwen3:8b")
    body = {"model": "qwen3:8b"}
    assert body_for(route, body) is body


def test_a_provider_s_own_body_gets_only_its_name():
    from ollama_proxy.routing.routes import named_for
    route = Router(POOL, PROVIDERS, _ollama).resolve("cloud", None, _models())
    body = {"model": "cloud", "messages": [], "max_tokens": 5}
    assert named_for(route, body) == {"model": "anthropic/claude-sonnet-4", "messages": [], "max_tokens": 5}


@pytest.mark.parametrize("principal, field, model, refused", [
    (Principal("ops", "manage", ("llama3*",)), "model", "llama3.2", False),
    (Principal("ops", "manage", ("llama3*",)), "model", "qwen3:8b", True),
    (Principal("ops", "manage", ("llama3*",)), "from", "qwen3:8b", True),
    (Principal("ops", "manage", ("llama3*",)), "destination", "llama3-copy", False),
    (Principal("ops", "manage", ("llama3*",)), "name", "gpt-4o", True),  # names judged as written
    (Principal("ops", "manage", ("llama3*",)), "from", "", False),  # absent for Ollama
    (Principal("ops", "manage", ("llama3*",)), "from", None, False),
    (Principal("admin", "manage"), "source", "qwen3:8b", False),  # a shared token: every model
    (None, "model", "qwen3:8b", False),  # no caller named (auth refused or skipped it)
    (Principal("admin", "manage"), "from", "gpt-oss:120b-cloud", True),  # a cloud model needs cloud
    (Principal("admin", "manage"), "model", "kimi-k2:1t-cloud", True),
    (Principal("admin", "manage", cloud=True), "from", "gpt-oss:120b-cloud", False),
    (Principal("admin", "manage"), "source", "GPT-OSS-Copy", True),  # a copy of one runs on ollama.com too
    (Principal("admin", "manage", cloud=True), "source", "gpt-oss-copy", False),
])
def test_refuse_unusable_model(principal, field, model, refused):
    from flask import Flask

    from ollama_proxy.ledger import RECORD_KEY, RequestRecord
    from ollama_proxy.routing.routes import refuse_unusable_model
    record = RequestRecord("r1", "POST", "/api/pull", "-", 0.0, caller=principal)
    app = Flask(__name__)
    app.extensions[ROUTER] = Router(POOL, PROVIDERS, _ollama)
    with app.test_request_context(environ_base={RECORD_KEY: record}):
        if not refused:
            assert refuse_unusable_model(model, field) is None
            return
        with pytest.raises(Forbidden) as caught:
            refuse_unusable_model(model, field)
    if principal.may_use(model):  # its patterns name it: the cloud permission is what it lacks
        assert caught.value.message.startswith(f"token '{principal.name}' may not use the cloud model '{model}'")
    else:
        assert caught.value.message == f"token 'ops' may not use the model '{model}' named in '{field}'"
    assert caught.value.param == field
