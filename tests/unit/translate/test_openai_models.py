"""Table tests for Ollama /api/tags -> OpenAI /v1/models."""

import pytest

from ollama_proxy.translate.openai_models import to_openai_model, to_openai_model_list

MODEL_CASES = [
    pytest.param({"name": "llama3.2:latest", "modified_at": "2025-05-04T17:37:44.706015396-07:00"},
                 {"id": "llama3.2:latest", "object": "model", "created": 1746405464, "owned_by": "library"},
                 id="library-nanoseconds-offset"),
    pytest.param({"name": "jmorgan/mistral", "modified_at": "2025-05-05T00:37:44Z"},
                 {"id": "jmorgan/mistral", "object": "model", "created": 1746405464, "owned_by": "jmorgan"},
                 id="namespace-zulu"),
    pytest.param({"name": "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M", "modified_at": "2025-05-05T00:37:44+00:00"},
                 {"id": "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M", "object": "model", "created": 1746405464,
                  "owned_by": "bartowski"}, id="host-namespace-tag"),
    pytest.param({"name": "localhost:5000/team/m:v1", "modified_at": "2025-05-05T05:37:44.5+05:00"},
                 {"id": "localhost:5000/team/m:v1", "object": "model", "created": 1746405464, "owned_by": "team"},
                 id="host-with-port"),
    pytest.param({"model": "qwen3", "modified_at": "not a time"},
                 {"id": "qwen3", "object": "model", "created": 0, "owned_by": "library"}, id="unreadable-time"),
]


@pytest.mark.parametrize("entry, expected", MODEL_CASES)
def test_model(entry, expected):
    assert to_openai_model(entry) == expected


LIST_CASES = [
    pytest.param(None, {"object": "list", "data": []}, id="null"),
    pytest.param({"models": None}, {"object": "list", "data": []}, id="null-models"),
    pytest.param({"models": []}, {"object": "list", "data": []}, id="empty"),
    pytest.param({"models": [{"name": "a:latest", "modified_at": "1970-01-01T00:00:10Z"},
                             {"name": "u/b:1", "modified_at": "1970-01-01T00:00:20Z"}]},
                 {"object": "list", "data": [
                     {"id": "a:latest", "object": "model", "created": 10, "owned_by": "library"},
                     {"id": "u/b:1", "object": "model", "created": 20, "owned_by": "u"}]}, id="two"),
]


@pytest.mark.parametrize("tags, expected", LIST_CASES)
def test_model_list(tags, expected):
    assert to_openai_model_list(tags) == expected
