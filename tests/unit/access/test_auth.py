import pytest

from ollama_proxy.access.auth import (
    GENERATE,
    MANAGE,
    METRICS,
    Principal,
    TokenTable,
    required_scope,
    token_from_headers,
)
from ollama_proxy.config import ConfigError, parse_settings


@pytest.mark.parametrize("headers, token", [
    ({"Authorization": "Bearer abc"}, "abc"),
    ({"Authorization": "bearer  abc "}, "abc"),
    ({"Authorization": "abc"}, "abc"),
    ({"x-api-key": "abc"}, "abc"),
    ({"Authorization": "Bearer abc", "x-api-key": "other"}, "abc"),
    ({"Authorization": "Bearer"}, "Bearer"),
    ({}, None),
    ({"x-api-key": "  "}, None),
])
def test_token_from_headers(headers, token):
    assert token_from_headers(headers) == token


@pytest.mark.parametrize("path, scope", [
    ("/health", None),
    ("/openapi.json", None),
    ("/favicon.ico", None),  # a browser asks with no token
    ("/metrics", METRICS),
    ("/", None),  # as Ollama's: "Ollama is running" to anyone
    ("/api/version", GENERATE),
    ("/api/tags", GENERATE),
    ("/api/chat", GENERATE),
    ("/api/show", GENERATE),
    ("/api/pull", MANAGE),
    ("/api/push", MANAGE),
    ("/api/create", MANAGE),
    ("/api/copy", MANAGE),
    ("/api/delete", MANAGE),
    ("/api/blobs/sha256:00", MANAGE),
    ("/api/status", GENERATE),
    ("/api/experimental/model-recommendations", GENERATE),
    ("/api/experimental/web_search", GENERATE),
    ("/api/experimental/web_fetch", GENERATE),
    ("/api/me", MANAGE),
    ("/api/signout", MANAGE),
    ("/api/me/", GENERATE),  # no route of Ollama's: a 404 for whoever may not manage (api_routes)
    ("/api/pullx", GENERATE),
    ("/admin", None), ("/admin/keys", None),  # the admin page checks its own session
    ("/api/a-route-ollama-adds-later", GENERATE),  # forwarded for a manage token, a 404 to others (api_routes)
    ("/v1/audio/transcriptions", GENERATE),
])
def test_required_scope(path, scope):
    assert required_scope(path) == scope


def test_token_table_finds_scope_and_name():
    settings = parse_settings({"auth": {"generate_tokens": ["g", {"name": "alice", "token": "a"}],
                                        "manage_tokens": ["m"]}}, environ={})
    table = TokenTable(settings.auth)
    assert table.find("g") == Principal("generate#0", GENERATE)
    assert table.find("a") == Principal("alice", GENERATE)
    assert table.find("m") == Principal("manage#0", MANAGE)
    assert table.find("x") is None
    assert table.find("") is None
    assert table.find("g ") is None


def test_a_token_may_use_cloud_models_only_when_its_entry_says_so():
    settings = parse_settings({"auth": {"generate_tokens": ["g", {"name": "lab", "token": "c", "cloud": True}],
                                        "manage_tokens": ["m"]}}, environ={})
    table = TokenTable(settings.auth)
    assert table.find("c") == Principal("lab", GENERATE, cloud=True)
    assert not table.find("g").cloud and not table.find("m").cloud


def test_a_token_may_use_the_web_only_when_its_entry_says_so():
    settings = parse_settings({"auth": {"generate_tokens": ["g", {"name": "web", "token": "w", "web": True}],
                                        "manage_tokens": ["m"]}}, environ={})
    table = TokenTable(settings.auth)
    assert table.find("w") == Principal("web", GENERATE, web=True)
    assert not table.find("g").web and not table.find("m").web


def test_a_token_of_the_file_may_carry_its_share_of_the_gpus_as_a_key_does():
    settings = parse_settings({"auth": {"generate_tokens": [
        "g", {"name": "nightly", "token": "n", "weight": 0.5, "class": "batch"},
        {"name": "webui", "token": "w", "trusted_frontend": True}]}}, environ={})
    table = TokenTable(settings.auth)
    assert table.find("n") == Principal("nightly", GENERATE, weight=0.5, klass="batch")
    assert table.find("w") == Principal("webui", GENERATE, trusted_frontend=True)
    assert table.find("g") == Principal("generate#0", GENERATE, weight=1.0, klass="interactive")


@pytest.mark.parametrize("entry, complaint", [
    ({"class": "urgent"}, "class"), ({"weight": 0}, "weight"), ({"weight": -1}, "weight"),
    ({"weight": 1001}, "weight")])
def test_a_tokens_share_is_checked(entry, complaint):
    with pytest.raises(ConfigError, match=complaint):
        parse_settings({"auth": {"generate_tokens": [{"token": "t", **entry}]}}, environ={})


def test_metrics_tokens_get_the_metrics_scope_only():
    settings = parse_settings({"metrics": {"tokens": [{"name": "prometheus", "token": "p"}]}}, environ={})
    assert TokenTable(settings.auth, settings.metrics.tokens).find("p") == Principal("prometheus", METRICS)


@pytest.mark.parametrize("scope, needed, allowed", [
    (GENERATE, GENERATE, True), (GENERATE, MANAGE, False), (MANAGE, GENERATE, True), (MANAGE, MANAGE, True),
    (GENERATE, METRICS, False), (MANAGE, METRICS, True), (METRICS, METRICS, True), (METRICS, GENERATE, False),
    (METRICS, MANAGE, False),
])
def test_principal_may(scope, needed, allowed):
    assert Principal("p", scope).may(needed) is allowed


@pytest.mark.parametrize("patterns, model, allowed", [
    ((), "anything", True),
    (("llama3*",), "llama3.2", True),
    (("llama3*",), "llama3.2:latest", True),
    (("llama3*",), "qwen3:8b", False),
    (("qwen3:*",), "qwen3:8b", True),
    (("qwen3:*",), "qwen3", True),  # a bare name is its :latest
    (("qwen3:8b",), "qwen3:8b", True),
    (("qwen3:8b",), "qwen3:4b", False),
    (("llama3.2",), "llama3.2:latest", True),
    (("llama3.2:latest",), "llama3.2", True),
    (("llama3.2",), "llama3.2:1b", False),
    (("Llama*",), "llama3.2", True),  # case is ignored, as Ollama ignores it in names
    (("llama3.2",), "Llama3.2", True),
    (("llama3.2",), "LLAMA3.2:Latest", True),
    (("llama3.2",), "registry.ollama.ai/library/llama3.2", True),  # the same model, spelt in full
    (("llama3.2",), "mattw/llama3.2", False),  # another namespace's
    (("registry:5000/m:latest",), "registry:5000/m", True),  # a port is no tag
    (("hf.co/bartowski/Llama-3.2*",), "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", True),
    (("a", "b*"), "bee", True),
])
def test_may_use(patterns, model, allowed):
    assert Principal("k", GENERATE, patterns).may_use(model) is allowed


def test_the_key_caches_have_their_documented_bounds():
    auth = parse_settings({}, environ={}).auth
    assert (auth.key_cache_seconds, auth.key_cache_size) == (5.0, 10000)
    assert (auth.unknown_key_cache_seconds, auth.unknown_key_cache_size) == (60.0, 10000)


@pytest.mark.parametrize("setting, value", [
    ("unknown_key_cache_size", 0), ("unknown_key_cache_size", 1.5), ("unknown_key_cache_seconds", -1),
])
def test_a_bad_unknown_key_cache_bound_is_refused(setting, value):
    from ollama_proxy.config import ConfigError
    with pytest.raises(ConfigError, match=f"auth.{setting}"):
        parse_settings({"auth": {setting: value}}, environ={})
