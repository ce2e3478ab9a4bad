from __future__ import annotations

import pytest

from ollama_proxy.routing.names import (
    canonical,
    is_cloud_model,
    matches,
    matches_any,
    same_model,
    split_provider,
)

PROVIDERS = {"deepseek": "deepseek-backend", "openrouter": "openrouter-backend"}


@pytest.mark.parametrize("name, expected", [
    # the default tag
    ("llama3.2", "llama3.2:latest"),
    ("llama3.2:latest", "llama3.2:latest"),
    ("qwen3", "qwen3:latest"),
    # an explicit tag is kept
    ("qwen3:8b", "qwen3:8b"),
    ("qwen3:0.6b", "qwen3:0.6b"),
    ("deepseek-r1:8b-llama-distill-q4_K_M", "deepseek-r1:8b-llama-distill-q4_k_m"),
    # case is ignored, in every part
    ("Llama3.2", "llama3.2:latest"),
    ("Llama3.2:Latest", "llama3.2:latest"),
    ("LLAMA3.2:LATEST", "llama3.2:latest"),
    ("Mattw/Pygmalion:Q4", "mattw/pygmalion:q4"),
    ("HF.co/User/Repo:Q4_K_M", "hf.co/user/repo:q4_k_m"),
    # a namespace
    ("mattw/pygmalion", "mattw/pygmalion:latest"),
    ("mattw/pygmalion:latest", "mattw/pygmalion:latest"),
    # the default namespace and host are left out, as Ollama lists names
    ("library/llama3.2", "llama3.2:latest"),
    ("Library/llama3.2:1b", "llama3.2:1b"),
    ("registry.ollama.ai/library/llama3.2", "llama3.2:latest"),
    ("Registry.Ollama.AI/Library/llama3.2:latest", "llama3.2:latest"),
    ("registry.ollama.ai/mattw/pygmalion", "mattw/pygmalion:latest"),
    ("https://registry.ollama.ai/library/llama3.2", "llama3.2:latest"),
    # another host keeps its namespace, library included
    ("hf.co/user/repo", "hf.co/user/repo:latest"),
    ("hf.co/user/repo:Q4_K_M", "hf.co/user/repo:q4_k_m"),
    ("example.com/library/m", "example.com/library/m:latest"),
    ("http://example.com/ns/m:1b", "example.com/ns/m:1b"),
    # a registry's port is no tag
    ("registry:5000/m", "registry:5000/m:latest"),
    ("registry:5000/m:1b", "registry:5000/m:1b"),
    ("registry:5000/team/m", "registry:5000/team/m:latest"),
    ("localhost:5000/library/phi", "localhost:5000/library/phi:latest"),
    ("localhost:5000/library/phi:Q8_0", "localhost:5000/library/phi:q8_0"),
    # provider names read as Ollama would read them: one spelling for every comparison
    ("deepseek:deepseek-chat", "deepseek:deepseek-chat"),
    ("openrouter/anthropic/claude-sonnet-4", "openrouter/anthropic/claude-sonnet-4:latest"),
    ("openrouter:qwen/qwen3:free", "openrouter:qwen/qwen3:free"),
    # a digest or a source suffix is no part of its own: Ollama reads it into the tag or the model
    ("llama3.2@sha256:ABC", "llama3.2@sha256:abc"),
    ("gpt-oss:120b-cloud", "gpt-oss:120b-cloud"),
    ("glm-4.7:cloud", "glm-4.7:cloud"),
    # empty and odd input
    ("", ""),
    ("   ", ""),
    ("  llama3.2  ", "llama3.2:latest"),  # Ollama trims a requested name
    ("m:", "m:"),  # a tag promised and missing: Ollama refuses the name, no default stands in
    (":8b", ":8b"),
    ("/m", "/m:latest"),
    ("a/b/c/d", "a/b/c/d:latest"),
    ("llama3.2:latest:latest", "llama3.2:latest:latest"),
])
def test_canonical(name, expected):
    assert canonical(name) == expected
    assert canonical(expected) == expected  # the canonical form is its own


@pytest.mark.parametrize("name, other, same", [
    ("Llama3.2", "llama3.2:latest", True),
    ("library/llama3.2", "registry.ollama.ai/library/llama3.2:LATEST", True),
    ("llama3.2", "llama3.2:1b", False),
    ("mattw/llama3.2", "llama3.2", False),
    ("example.com/library/m", "m", False),
    ("registry:5000/m", "registry:5000/m:latest", True),
    ("registry:5000/m", "registry:5001/m", False),
    ("gpt-4o", "GPT-4o:latest", True),
])
def test_same_model(name, other, same):
    assert same_model(name, other) is same
    assert same_model(other, name) is same


@pytest.mark.parametrize("pattern, name, matched", [
    ("llama3*", "llama3.2", True),
    ("llama3*", "Llama3.2:latest", True),
    ("Llama*", "llama3.2", True),  # patterns ignore case, as names do
    ("llama3.2", "llama3.2:latest", True),  # a bare pattern is its :latest
    ("llama3.2:latest", "llama3.2", True),
    ("llama3.2", "llama3.2:1b", False),
    ("qwen3:*", "qwen3", True),
    ("qwen3:*", "qwen3:8b", True),
    ("qwen3:8b", "qwen3:4b", False),
    ("llama3.2", "library/llama3.2", True),  # as the listing shows it
    ("llama3.2", "registry.ollama.ai/library/llama3.2", True),
    ("hf.co/*", "HF.co/user/repo:Q4_K_M", True),
    ("*:q4_k_m", "hf.co/user/repo:Q4_K_M", True),
    ("registry:5000/m", "registry:5000/m", True),
    ("registry:5000/*", "registry:5000/m:1b", True),
    ("*:5000", "registry:5000/m", False),  # a port is no tag
    ("deepseek:*", "deepseek:deepseek-chat", True),
    ("openrouter/anthropic/*", "openrouter/anthropic/claude-sonnet-4", True),
    ("openrouter/anthropic/claude-sonnet-4", "openrouter/anthropic/claude-sonnet-4", True),
    ("*", "", True),
    ("llama3*", "", False),
    ("llama3*", "llama3.2/library/qwen3:8b", False),  # qwen3:8b from a host named llama3.2
    ("llama3*", "llama3.example.com/team/secret", False),
    ("llama3*", "mattw/llama3-tuned", False),
    ("mattw/*", "mattw/llama3-tuned", True),
    ("*", "llama3.2/library/qwen3:8b", True),
])
def test_matches(pattern, name, matched):
    assert matches(name, pattern) is matched


def test_matches_any():
    assert matches_any("Qwen3:8b", ("llama3*", "qwen3:*"))
    assert not matches_any("phi4", ("llama3*", "qwen3:*"))
    assert not matches_any("phi4", ())


@pytest.mark.parametrize("model, expected", [
    ("deepseek:deepseek-chat", ("deepseek", "deepseek-chat")),
    ("deepseek/deepseek-chat", ("deepseek", "deepseek-chat")),
    ("openrouter/anthropic/claude-sonnet-4", ("openrouter", "anthropic/claude-sonnet-4")),
    ("openrouter:qwen/qwen3:free", ("openrouter", "qwen/qwen3:free")),
    ("openrouter:Anthropic/Claude", ("openrouter", "Anthropic/Claude")),  # the provider's model as written
    ("llama3.2", None),
    ("llama3.2:latest", None),
    ("hf.co/user/repo:Q4_K_M", None),
    ("deepseek-r1:8b", None),  # an Ollama model whose name starts like a provider's
    ("deepseek:", None),
    ("Deepseek:deepseek-chat", None),  # provider names are exact
    (" deepseek:deepseek-chat", None),
    ("", None),
])
def test_split_provider(model, expected):
    assert split_provider(model, PROVIDERS) == expected


# Every place that compares names reads each spelling of one model as that model.
SPELLINGS = ["llama3.2", "llama3.2:latest", "Llama3.2", "LLAMA3.2:Latest", "library/llama3.2",
             "registry.ollama.ai/library/llama3.2:latest", " llama3.2 "]


def _server(name: str, models: tuple[str, ...] = (), filter_: tuple[str, ...] = ()):
    from ollama_proxy.backends.pool_servers import PoolServer
    from ollama_proxy.config import OllamaServerSettings
    return PoolServer(OllamaServerSettings(name, f"http://{name}:11434", None, filter_), backend=None,
                       models=frozenset(models))


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_aliases_and_overrides_read_every_spelling_as_the_model(spelling):
    from ollama_proxy.config.models import ModelOverride
    from ollama_proxy.routing.overrides import ModelTable
    override = ModelOverride(enforce={"timeout": 900})
    table = ModelTable({"house": "Llama3.2", "GPT-4o": "qwen3:8b"}, {"llama3.2": override})
    assert table.override_for(spelling) is override
    assert table.timeout_for(spelling) == (900, "models.overrides.llama3.2.enforce.timeout")
    assert table.override_for("house") is override  # through the alias's model
    assert table.aliases_of(spelling) == ["house"]
    assert table.resolve("gpt-4o:latest") == "qwen3:8b"
    assert ModelTable({spelling: "qwen3:8b"}).resolve("llama3.2:latest") == "qwen3:8b"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_access_patterns_read_every_spelling_as_the_model(spelling):
    from ollama_proxy.access.auth import GENERATE, Principal
    for pattern in ("llama3.2", "Llama3.2:latest", "llama3*"):
        assert Principal("k", GENERATE, (pattern,)).may_use(spelling), pattern
    assert not Principal("k", GENERATE, ("qwen3*",)).may_use(spelling)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_pool_reads_every_spelling_as_the_model(spelling):
    from ollama_proxy.backends.pool_servers import admits, rank
    servers = [_server("default"), _server("gpu2", ("llama3.2:latest",), filter_=("Llama3*",))]
    assert [s.name for s in rank(servers, spelling, now=0.0)] == ["gpu2"]
    assert admits(("llama3.2",), spelling)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_listings_read_every_spelling_as_the_model(spelling):
    from ollama_proxy.routing.listings import merge
    from ollama_proxy.routing.overrides import ModelTable
    merged = merge([[{"name": "llama3.2:latest"}], [{"name": spelling}, {"name": "qwen3:8b"}]], lambda name: True)
    assert [e["name"] for e in merged] == ["llama3.2:latest", "qwen3:8b"]
    listed = ModelTable({"house": spelling}).with_aliases([{"name": "llama3.2:latest", "size": 1}])
    assert listed[1] == {"name": "house", "model": "house", "size": 1}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_admin_page_reads_every_spelling_as_the_model(spelling):
    from ollama_proxy.blueprints.admin.models import check_alias
    known = {"llama3.2:latest", "qwen3:8b"}
    assert check_alias("house", spelling, known) is None
    hidden = f"'{spelling}' is a model a backend serves: an alias would hide it"
    assert check_alias(spelling, "qwen3:8b", known) == hidden


def test_a_registry_port_is_read_alike_everywhere():
    from ollama_proxy.access.auth import GENERATE, Principal
    from ollama_proxy.backends.pool_servers import rank
    from ollama_proxy.routing.overrides import ModelTable
    servers = [_server("default"), _server("gpu2", ("registry:5000/m:latest",))]
    assert [s.name for s in rank(servers, "registry:5000/m", now=0.0)] == ["gpu2"]
    assert ModelTable({"m-alias": "registry:5000/m"}).aliases_of("registry:5000/m:latest") == ["m-alias"]
    assert ModelTable({"registry:5000/m:latest": "x"}).resolve("registry:5000/m") == "x"
    assert Principal("k", GENERATE, ("registry:5000/m:latest",)).may_use("registry:5000/m")


@pytest.mark.parametrize("name, cloud", [
    ("gpt-oss:120b-cloud", True),
    ("qwen3-coder:480b-cloud", True),
    ("deepseek-v3.1:671b-cloud", True),
    ("kimi-k2:1t-cloud", True),
    ("glm-4.6:cloud", True),
    ("Gpt-OSS:120B-Cloud", True),  # case is ignored, as in every name
    ("registry.ollama.ai/library/minimax-m2:cloud", True),  # the default host and namespace spelt out
    ("library/gpt-oss:20b-cloud", True),
    ("  gpt-oss:120b-cloud ", True),
    ("example.com/team/model:cloud", True),  # another registry's: still run elsewhere
    ("gpt-oss:120b", False),
    ("gpt-oss", False),
    ("cloud", False),  # a model named cloud, tagged latest
    ("cloud-model", False),
    ("my-cloud:latest", False),
    ("gpt-oss:cloudy", False),
    ("gpt-oss:cloud-7b", False),
    ("registry:5000/cloud", False),  # a port is no tag
    ("", False),
])
def test_is_cloud_model_reads_the_tag(name, cloud):
    assert is_cloud_model(name) is cloud
