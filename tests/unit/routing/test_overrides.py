from __future__ import annotations

import json

import pytest

from ollama_proxy.config import parse_settings
from ollama_proxy.config.models import ModelOverride
from ollama_proxy.routing.overrides import ModelTable, apply_override

QWEN = ModelOverride(defaults={"num_ctx": 32768, "think": True}, enforce={"num_predict": 4096})


# Precedence, field by field: enforce > request > model default > global default.
@pytest.mark.parametrize("body, override, global_defaults, expected", [
    pytest.param({"model": "m"}, QWEN, {},
                 {"model": "m", "think": True, "options": {"num_ctx": 32768, "num_predict": 4096}},
                 id="defaults-and-enforce-fill-an-empty-request"),
    pytest.param({"model": "m", "think": False, "options": {"num_ctx": 2048, "num_predict": 10}}, QWEN, {},
                 {"model": "m", "think": False, "options": {"num_ctx": 2048, "num_predict": 4096}},
                 id="request-beats-default-enforce-beats-request"),
    pytest.param({"model": "m", "think": None, "options": {"num_ctx": None}}, QWEN, {},
                 {"model": "m", "think": True, "options": {"num_ctx": 32768, "num_predict": 4096}},
                 id="null-counts-as-absent"),
    pytest.param({"model": "m"}, QWEN, {"num_ctx": 8192, "keep_alive": "1h"},
                 {"model": "m", "think": True, "keep_alive": "1h", "options": {"num_ctx": 32768, "num_predict": 4096}},
                 id="model-default-beats-global-default"),
    pytest.param({"model": "m", "keep_alive": 0}, ModelOverride(), {"keep_alive": "1h", "temperature": 0.1},
                 {"model": "m", "keep_alive": 0, "options": {"temperature": 0.1}},
                 id="request-beats-global-default"),
    pytest.param({"model": "m", "options": {"seed": 1}}, ModelOverride(enforce={"exclude_reasoning": True}), {},
                 {"model": "m", "options": {"seed": 1}, "exclude_reasoning": True},
                 id="other-options-kept"),
    pytest.param({"model": "m"}, ModelOverride(defaults={"timeout": 900}), {"timeout": 30},
                 {"model": "m"}, id="timeout-is-never-sent"),
])
def test_apply_override(body, override, global_defaults, expected):
    before = repr(body)
    assert apply_override(body, override, global_defaults) == expected
    assert repr(body) == before  # the caller's body is not changed


def test_an_unchanged_body_is_the_same_object():
    body = {"model": "m", "options": {"num_predict": 4096, "num_ctx": 1}, "think": False}
    assert apply_override(body, QWEN, {}) is body
    assert apply_override(body, ModelOverride(), {}) is body


def table() -> ModelTable:
    settings = parse_settings({"models": {
        "aliases": {"gpt-4o": "llama3.2:latest", "fast": "qwen3:0.6b", "old": "llama2"},
        "overrides": {"qwen3:8b": {"defaults": {"num_ctx": 32768}}, "llama3.2": {"enforce": {"timeout": 900}},
                      "fast": {"enforce": {"num_predict": 64}}},
        "defaults": {"keep_alive": "30m"},
    }}, environ={}).models
    return ModelTable.merged(settings, {"old": "qwen3:8b", "mini": "qwen3:0.6b"},
                             {"qwen3:8b": {"defaults": {"num_ctx": 4096}, "enforce": {}}})


@pytest.mark.parametrize("asked, resolved, is_alias", [
    ("gpt-4o", "llama3.2:latest", True),
    ("gpt-4o:latest", "llama3.2:latest", True),
    ("old", "qwen3:8b", True),  # the store's entry replaces the file's
    ("mini", "qwen3:0.6b", True),
    ("llama3.2", "llama3.2", False),
    ("qwen3:8b", "qwen3:8b", False),
])
def test_resolve(asked, resolved, is_alias):
    assert table().resolve(asked) == resolved
    assert table().is_alias(asked) is is_alias


@pytest.mark.parametrize("asked, options, keep_alive, timeout", [
    ("qwen3:8b", {"num_ctx": 4096}, "30m", None),  # the store's override replaces the file's
    ("old", {"num_ctx": 4096}, "30m", None),  # an alias gets its model's override
    ("fast", {"num_predict": 64}, "30m", None),  # ...unless it has its own
    ("llama3.2:latest", None, "30m", (900, "models.overrides.llama3.2.enforce.timeout")),
    ("gpt-4o", None, "30m", (900, "models.overrides.llama3.2.enforce.timeout")),
    ("unknown", None, "30m", None),
])
def test_overrides_through_the_table(asked, options, keep_alive, timeout):
    body = table().apply(asked, {"model": table().resolve(asked)})
    assert body.get("options") == options and body["keep_alive"] == keep_alive
    assert table().timeout_for(asked) == timeout


@pytest.mark.parametrize("override, global_defaults, expected", [
    ({"defaults": {"timeout": 60}, "enforce": {"timeout": 900}}, {"timeout": 5},
     (900, "models.overrides.qwen3:8b.enforce.timeout")),
    ({"defaults": {"timeout": 60}}, {"timeout": 5}, (60, "models.overrides.qwen3:8b.defaults.timeout")),
    ({"defaults": {"num_ctx": 1}}, {"timeout": 5}, (5, "models.defaults.timeout")),
])
def test_a_timeout_names_the_setting_it_comes_from(override, global_defaults, expected):
    settings = parse_settings({"models": {"overrides": {"qwen3:8b": override}, "defaults": global_defaults}},
                              environ={}).models
    assert ModelTable.merged(settings, {}, {}).timeout_for("qwen3:8b") == expected


def test_a_stored_entry_replaces_the_file_s_entry_for_the_same_model_however_spelt():
    settings = parse_settings({"models": {"aliases": {"GPT-4o": "llama3.2"},
                                          "overrides": {"Qwen3:8b": {"defaults": {"num_ctx": 32768}}}}},
                              environ={}).models
    merged = ModelTable.merged(settings, {"gpt-4o:latest": "qwen3:8b"},
                               {"qwen3:8b": {"defaults": {"num_ctx": 4096}, "enforce": {}}})
    assert merged.aliases == {"gpt-4o:latest": "qwen3:8b"}
    assert merged.overrides == {"qwen3:8b": ModelOverride({"num_ctx": 4096}, {})}
    assert merged.resolve("GPT-4o") == "qwen3:8b"
    assert merged.aliases_of("qwen3:8b") == ["gpt-4o:latest"]


def test_aliases_of():
    assert table().aliases_of("llama3.2") == ["gpt-4o"]
    assert table().aliases_of("qwen3:0.6b") == ["fast", "mini"]
    assert table().aliases_of("llava") == []


@pytest.mark.parametrize("patterns, asked, allowed", [
    (("llama3*",), "gpt-4o", True),  # through the model it names
    (("llama3*",), "gpt-4o:latest", True),
    (("gpt-*",), "gpt-4o", False),  # its own name grants nothing: llama3.2 would run
    (("gpt-4o",), "gpt-4o:latest", False),
    (("old",), "old", False),
    (("qwen3:*",), "gpt-4o", False),
    (("qwen3:*",), "llama3.2", False),
    (("qwen3:8b",), "old", True),  # the store's alias decides what runs, and so who may use it
    (("llama2",), "old", False),  # ...not the file's alias it replaced
    (("gpt-*",), "llama3.2", False),  # the alias opens the alias, not the model under it
    (("llama3*",), "llama3.2", True),  # a name no alias holds is judged as it is
])
def test_may_use_is_decided_on_the_model_that_runs(patterns, asked, allowed):
    from fnmatch import fnmatchcase
    assert table().may_use(lambda name: any(fnmatchcase(name, p) for p in patterns), asked) is allowed


def test_an_alias_named_like_an_allowed_model_is_judged_by_its_target():
    settings = parse_settings({"models": {"aliases": {"llama3.2": "qwen3:8b"}}}, environ={}).models
    aliased = ModelTable.merged(settings, {}, {})
    assert aliased.may_use(lambda name: name.startswith("llama3"), "llama3.2") is False
    assert aliased.may_use(lambda name: name.startswith("qwen3"), "llama3.2:latest") is True


def test_with_aliases_lists_an_alias_as_its_model():
    entries = [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 1},
               {"name": "qwen3:8b", "model": "qwen3:8b", "size": 2}]
    listed = table().with_aliases(entries)
    assert [e["name"] for e in listed] == ["llama3.2:latest", "qwen3:8b", "gpt-4o", "old"]
    assert listed[2] == {"name": "gpt-4o", "model": "gpt-4o", "size": 1}
    assert table().with_aliases([]) == []  # an alias of a model no server has is not listed


@pytest.mark.parametrize("line, expected", [
    (b'{"model":"llama3.2","response":"hi","done":false}\n', b'{"model":"gpt-4o","response":"hi","done":false}\n'),
    (b'{"model":"llama3.2","done":true}', b'{"model":"gpt-4o","done":true}'),
    (b'{"error":"boom"}\n', b'{"error":"boom"}\n'),
    (b'not json\n', b'not json\n'),
    (b'[1]\n', b'[1]\n'),
])
def test_renamed_line(line, expected):
    from ollama_proxy.routing.overrides import renamed_line
    assert renamed_line(line, "gpt-4o") == expected


@pytest.mark.parametrize("chunks", [
    [b'{"model":"a","n":1}\n{"model":"a","n":2}\n'],
    [b'{"model":"a",', b'"n":1}\n{"mo', b'del":"a","n":2}\n'],
    [b'{"model":"a","n":1}\n', b'{"model":"a","n":2}'],  # the last line without its newline
])
def test_renamed_lines_across_chunk_boundaries(chunks):
    from ollama_proxy.routing.overrides import renamed_lines
    out = b"".join(renamed_lines(iter(chunks), "alias"))
    assert [json.loads(line) for line in out.splitlines()] == [{"model": "alias", "n": 1},
                                                                {"model": "alias", "n": 2}]


@pytest.mark.parametrize("line, expected", [
    (b'data: {"id":"c1","model":"smollm2","choices":[]}\n', b'data: {"id":"c1","model":"lab:smollm2","choices":[]}\n'),
    (b'data:{"model":"smollm2"}', b'data: {"model":"lab:smollm2"}'),
    (b"data: [DONE]\n", b"data: [DONE]\n"),
    (b'data: {"error":{"message":"boom"}}\n', b'data: {"error":{"message":"boom"}}\n'),
    (b": keep-alive\n", b": keep-alive\n"),
    (b"event: x\n", b"event: x\n"),
    (b"\n", b"\n"),
])
def test_renamed_event_line(line, expected):
    from ollama_proxy.routing.overrides import renamed_event_line
    assert renamed_event_line(line, "lab:smollm2") == expected


def test_renamed_sse_stream_split_anywhere_keeps_every_event():
    from ollama_proxy.routing.overrides import renamed_event_line, renamed_lines
    stream = b'data: {"model":"m","n":1}\n\ndata: {"model":"m","n":2}\n\ndata: [DONE]\n\n'
    for size in (1, 5, 17, len(stream)):
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        out = b"".join(renamed_lines(iter(pieces), "p:m", renamed_event_line))
        assert out == stream.replace(b'"model":"m"', b'"model":"p:m"'), size


def test_the_file_s_report_context_stands_when_the_store_holds_an_override_for_its_model():
    settings = parse_settings({"models": {"overrides": {
        "Qwen3:8b": {"defaults": {"num_ctx": 32768}, "report_context": 200000},
        "llama3.2": {"defaults": {"num_ctx": 8192}, "report_context": 100000}}}}, environ={}).models
    merged = ModelTable.merged(settings, {}, {"qwen3:8b": {"defaults": {"num_ctx": 16384}, "enforce": {}}})
    assert merged.override_for("qwen3:8b") == ModelOverride({"num_ctx": 16384}, {}, 200000)
    assert merged.override_for("llama3.2:latest").report_context == 100000
    assert ModelTable.merged(settings, {}, {}).override_for("qwen3:8b").report_context == 200000
