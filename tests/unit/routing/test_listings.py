import pytest

from ollama_proxy.routing.listings import merge, merged_listing


def _entries(*names):
    return [{"name": n, "model": n} for n in names]


def test_merge_keeps_each_name_once_first_server_first():
    merged = merge([_entries("llama3.2:latest", "qwen3:8b"), _entries("Qwen3:8b", "phi4:latest")],
                   lambda model: True)
    assert [m["name"] for m in merged] == ["llama3.2:latest", "qwen3:8b", "phi4:latest"]


def test_merge_leaves_out_models_the_caller_may_not_use():
    merged = merge([_entries("llama3.2:latest", "qwen3:8b"), _entries("deepseek:deepseek-chat")],
                   lambda model: model.startswith(("llama", "deepseek:")))
    assert [m["name"] for m in merged] == ["llama3.2:latest", "deepseek:deepseek-chat"]


def test_merge_of_nothing_is_empty():
    assert merge([], lambda model: True) == []


def _router(*names, provider_names=()):
    """A router whose one Ollama server lists ``names`` and whose provider ``lab`` lists ``provider_names``."""
    from types import SimpleNamespace
    server = SimpleNamespace(name="default")
    pool = SimpleNamespace(gather=lambda path: [(server, {"models": _entries(*names)})])
    lab = SimpleNamespace(name="lab", tags=lambda: {"models": _entries(*(f"lab:{n}" for n in provider_names))})
    return SimpleNamespace(pool=pool, providers={"lab": lab})


def _table():
    from ollama_proxy.config import parse_settings
    from ollama_proxy.routing.overrides import ModelTable
    settings = parse_settings({"models": {"aliases": {
        "gpt-4o": "llama3.2:latest", "llama3-fast": "qwen3:8b", "cloud": "lab:fake-chat"}}}, environ={}).models
    return ModelTable.merged(settings, {}, {})


@pytest.mark.parametrize("allowed, listed", [
    # an alias shows with the model it names, and only then: its own name grants nothing
    (("llama3*",), ["llama3.2:latest", "gpt-4o"]),
    (("gpt-*", "llama3-*"), []),
    (("qwen3:*",), ["qwen3:8b", "llama3-fast"]),
    (("lab:*",), ["lab:fake-chat", "cloud"]),  # an alias of a provider's model likewise
    (("*",), ["llama3.2:latest", "qwen3:8b", "lab:fake-chat", "cloud", "gpt-4o", "llama3-fast"]),
])
def test_an_alias_is_listed_only_when_the_caller_may_use_its_model(allowed, listed):
    from fnmatch import fnmatchcase
    router = _router("llama3.2:latest", "qwen3:8b", provider_names=("fake-chat",))
    listing = merged_listing(router, "/api/tags", lambda name: any(fnmatchcase(name, p) for p in allowed), _table())
    assert [m["name"] for m in listing["models"]] == listed
