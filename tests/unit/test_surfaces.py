"""Every route of the app belongs to exactly one surface, and every Ollama path the proxy lists is served as listed."""

from __future__ import annotations

import pytest

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.ollama import BODY_SCHEMAS
from ollama_proxy.surfaces import (
    CHECKED,
    FORM,
    MANAGE,
    OLLAMA_PATHS,
    SURFACES,
    claims,
    is_chat,
    ollama_path,
    paths_of,
    surface_of,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("surfaces")
    return create_app(parse_settings({"logging": {"dir": str(folder)}, "metrics": {"enabled": True},
                                      "store": {"url": f"sqlite:///{folder}/store.db"}}, environ={}))


def _static_part(rule: str) -> str:
    return rule.split("<", 1)[0]


def test_every_url_rule_belongs_to_exactly_one_surface_and_that_surface_names_its_blueprint(app):
    for rule in app.url_map.iter_rules():
        path = _static_part(rule.rule)
        found = claims(path)
        assert found, f"{rule.rule} belongs to no surface"
        closest = [surface for n, surface in found if n == found[0][0]]
        assert len(closest) == 1, f"{rule.rule} is claimed as closely by {[s.name for s in closest]}"
        blueprint = rule.endpoint.rpartition(".")[0]
        assert blueprint in closest[0].blueprints, f"{rule.rule} ({blueprint}) is {closest[0].name}'s"


def test_every_surface_serves_a_route_and_every_blueprint_has_a_surface(app):
    served = {surface_of(_static_part(rule.rule)).name for rule in app.url_map.iter_rules()}
    assert served == {surface.name for surface in SURFACES}
    assert set(app.blueprints) == {name for surface in SURFACES for name in surface.blueprints}


@pytest.mark.parametrize("path, surface", [
    ("/", "native"), ("/api/chat", "native"), ("/api/experimental/model-recommendations", "native"),
    ("/api/me", "native"), ("/api/anything-ollama-adds", "native"), ("/api/experimental/web_search", "web"),
    ("/api/experimental/web_fetch", "web"), ("/v1/chat/completions", "openai"), ("/v1/embeddings", "openai"),
    ("/v1/audio/transcriptions", "openai"), ("/v1/unknown", "openai"), ("/v1/responses", "responses"),
    ("/v1/messages", "anthropic"), ("/v1/messages/count_tokens", "anthropic"), ("/anthropic/v1/messages", "anthropic"),
    ("/admin", "admin"), ("/admin/keys", "admin"), ("/administrator", "other"), ("/health", "other"),
    ("/metrics", "other"), ("/openapi.json", "other"), ("/favicon.ico", "other"), ("/nowhere", "other"),
])
def test_a_path_belongs_to_the_surface_that_claims_it_most_closely(path, surface):
    assert surface_of(path).name == surface


def test_each_surface_writes_its_errors_in_its_own_shape_and_the_admin_page_in_html():
    error = InvalidRequest("no model")
    shapes = {s.name: s.render_error(error) if s.render_error else "html" for s in SURFACES}
    assert shapes["native"] == shapes["web"] == shapes["other"] == {"error": "no model"}
    assert shapes["openai"] == shapes["responses"] and shapes["openai"]["error"]["message"] == "no model"
    assert shapes["anthropic"]["type"] == "error" and shapes["admin"] == "html"


def test_the_chats_are_the_conversation_turns_of_every_surface():
    chats = {surface.name: set(surface.chats) for surface in SURFACES if surface.chats}
    assert chats == {"native": {"/api/chat", "/api/generate"},
                     "openai": {"/v1/chat/completions", "/v1/completions"}, "responses": {"/v1/responses"},
                     "anthropic": {"/v1/messages", "/anthropic/v1/messages"}}
    assert all(surface_of(path).name == name for name, paths in chats.items() for path in paths)
    assert is_chat("/v1/messages") and not is_chat("/v1/messages/count_tokens") and not is_chat("/api/embed")


def test_every_checked_ollama_path_has_a_body_schema_and_every_schema_a_path():
    assert {entry.path for entry in paths_of(CHECKED)} == set(BODY_SCHEMAS)


def test_every_listed_ollama_path_is_a_route_with_the_listed_methods(app):
    routes = {_static_part(rule.rule): rule for rule in app.url_map.iter_rules()}
    for entry in OLLAMA_PATHS:
        rule = routes[entry.path]
        assert set(entry.methods) <= rule.methods, entry.path
        assert (entry.kind == FORM) == (rule.endpoint.partition(".")[0] == "audio"), entry.path


def test_only_what_is_routed_names_a_model_and_only_inference_waits_for_a_slot():
    scheduled = {entry.path for entry in OLLAMA_PATHS if entry.scheduled}
    assert scheduled == {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/v1/audio/transcriptions"}
    assert all(entry.routed and entry.model_fields for entry in OLLAMA_PATHS if entry.scheduled)
    assert all(entry.model_fields for entry in OLLAMA_PATHS if entry.scope == MANAGE and entry.kind == CHECKED)
    assert ollama_path("/api/blobs/sha256:" + "a" * 64) == ollama_path("/api/blobs/")
    assert ollama_path("/api/pullx") is None
