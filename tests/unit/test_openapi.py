import pytest
from openapi_spec_validator import validate

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings
from ollama_proxy.openapi import build_spec, openapi_path, schema_name, typed_property
from ollama_proxy.schemas import answers, anthropic, ollama, openai
from ollama_proxy.schemas.fields import Typed, boolean, obj, string


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    settings = parse_settings({"logging": {"dir": str(tmp_path_factory.mktemp("logs"))}}, environ={})
    return build_spec(create_app(settings))


def test_the_description_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")


@pytest.mark.parametrize("path, methods", [
    ("/", {"get"}),
    ("/api/tags", {"get"}),
    ("/api/chat", {"post"}),
    ("/api/generate", {"post"}),
    ("/api/delete", {"delete"}),
    ("/api/blobs/{digest}", {"post"}),
    ("/v1/chat/completions", {"post"}),
    ("/v1/completions", {"post"}),
    ("/v1/embeddings", {"post"}),
    ("/v1/models", {"get"}),
    ("/v1/models/{model_id}", {"get"}),
    ("/v1/messages", {"post"}),
    ("/anthropic/v1/messages", {"post"}),
    ("/v1/responses", {"post"}),
    ("/health", {"get"}),
    ("/metrics", {"get"}),
    ("/openapi.json", {"get"}),
    ("/api/status", {"get"}),
    ("/api/experimental/model-recommendations", {"get"}),
    ("/api/experimental/web_search", {"post"}),
    ("/api/experimental/web_fetch", {"post"}),
    ("/api/me", {"post"}),
    ("/api/signout", {"post"}),
    ("/api/{rest}", {"get", "post", "put", "patch", "delete"}),
    ("/v1/audio/transcriptions", {"post"}),
])
def test_every_surface_is_described(spec, path, methods):
    assert set(spec["paths"][path]) - {"parameters"} == methods


@pytest.mark.parametrize("path, method, schema", [
    ("/api/chat", "post", "OllamaChatRequest"),
    ("/api/embed", "post", "OllamaEmbedRequest"),
    ("/v1/chat/completions", "post", "OpenAIChatCompletionRequest"),
    ("/v1/embeddings", "post", "OpenAIEmbeddingsRequest"),
    ("/v1/messages", "post", "AnthropicMessagesRequest"),
    ("/v1/responses", "post", "OpenAIResponsesRequest"),
])
def test_bodies_refer_to_the_schemas_that_check_them(spec, path, method, schema):
    body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{schema}"}
    assert schema in spec["components"]["schemas"]


@pytest.mark.parametrize("path, method, error", [
    ("/api/chat", "post", "OllamaError"),
    ("/v1/chat/completions", "post", "OpenAIError"),
    ("/v1/messages", "post", "AnthropicError"),
    ("/anthropic/v1/messages/count_tokens", "post", "AnthropicError"),
])
def test_errors_are_described_in_the_surfaces_dialect(spec, path, method, error):
    responses = spec["paths"][path][method]["responses"]
    for status in ("400", "401", "404", "502", "default"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{error}"}


def test_security_bearer_and_api_key_but_health_root_and_description_public(spec):
    assert spec["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
    assert spec["security"] == [{"bearer": []}, {"apiKey": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/openapi.json"]["get"]["security"] == []
    assert spec["paths"]["/"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/api/version"]["get"]
    assert "security" not in spec["paths"]["/metrics"]["get"]


def test_a_disabled_metrics_endpoint_is_not_described(tmp_path):
    settings = parse_settings({"logging": {"dir": str(tmp_path)}, "metrics": {"enabled": False}}, environ={})
    assert "/metrics" not in build_spec(create_app(settings))["paths"]


def test_the_admin_pages_are_not_part_of_the_api(spec):
    assert not [path for path in spec["paths"] if path.startswith("/admin")]


def test_unknown_fields_stay_allowed_in_request_bodies(spec):
    chat = spec["components"]["schemas"]["OllamaChatRequest"]
    assert chat.get("additionalProperties", True) is not False
    assert chat["properties"]["think"] == {"oneOf": [{"type": "boolean"}, {"type": "string"}], "nullable": True}


@pytest.mark.parametrize("rule, path", [
    ("/api/tags", "/api/tags"),
    ("/api/blobs/<path:digest>", "/api/blobs/{digest}"),
    ("/v1/models/<model_id>", "/v1/models/{model_id}"),
    ("/a/<int:x>/b/<y>", "/a/{x}/b/{y}"),
])
def test_openapi_path(rule, path):
    assert openapi_path(rule) == path


@pytest.mark.parametrize("field, described", [
    (string(), {"type": "string"}),
    (boolean(), {"type": "boolean"}),
    (obj(), {"type": "object"}),
    (Typed(str, float), {"oneOf": [{"type": "string"}, {"type": "number"}]}),
    (Typed(str, list), {"oneOf": [{"type": "string"}, {"type": "array"}]}),
])
def test_typed_fields_get_their_json_types(field, described):
    assert typed_property(None, field) == described


def test_other_fields_are_left_to_apispec():
    from marshmallow import fields
    assert typed_property(None, fields.Integer()) == {}


@pytest.mark.parametrize("schema, name", [
    (ollama.EmbeddingsRequest, "OllamaEmbeddingsRequest"),
    (openai.EmbeddingsRequest(), "OpenAIEmbeddingsRequest"),
    (anthropic.MessagesRequest, "AnthropicMessagesRequest"),
    (answers.OpenAIError, "OpenAIError"),
])
def test_schema_names_keep_surfaces_apart(schema, name):
    assert schema_name(schema) == name


def test_a_transcription_is_described_as_the_form_it_is(spec):
    operation = spec["paths"]["/v1/audio/transcriptions"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "model"] and form["properties"]["file"]["format"] == "binary"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/plain"}
    assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIError"}

