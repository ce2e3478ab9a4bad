import pytest

from ollama_proxy.errors import UpstreamError
from ollama_proxy.translate.provider_answers import show_body, tags_entry, to_ollama_embed, to_ollama_embeddings

WHEN = "2026-01-01T00:00:00Z"
DETAILS = {"parent_model": "", "format": "", "family": "deepseek", "families": ["deepseek"],
           "parameter_size": "", "quantization_level": ""}


def test_tags_entry():
    assert tags_entry("deepseek", "deepseek-chat", WHEN) == {
        "name": "deepseek:deepseek-chat", "model": "deepseek:deepseek-chat", "modified_at": WHEN, "size": 0,
        "digest": "", "details": DETAILS}


@pytest.mark.parametrize("context_length, capabilities, model_info, expected_capabilities", [
    (65536, ("completion", "tools", "thinking"),
     {"general.architecture": "deepseek", "deepseek.context_length": 65536}, ["completion", "tools", "thinking"]),
    (None, (), {"general.architecture": "deepseek"}, ["completion", "tools"]),
])
def test_show_body(context_length, capabilities, model_info, expected_capabilities):
    assert show_body("deepseek", context_length, capabilities, WHEN) == {
        "modelfile": "", "parameters": "", "template": "", "details": DETAILS, "model_info": model_info,
        "capabilities": expected_capabilities, "modified_at": WHEN}


ANSWER = {"object": "list", "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4},
          "data": [{"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
                   {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}


def test_to_ollama_embed_orders_vectors_and_reports_usage():
    assert to_ollama_embed(ANSWER, "p:e", 0.0125) == {
        "model": "p:e", "embeddings": [[0.1, 0.2], [0.3, 0.4]], "total_duration": 12_500_000,
        "load_duration": 0, "prompt_eval_count": 4}


def test_to_ollama_embeddings_takes_the_first_vector():
    assert to_ollama_embeddings(ANSWER) == {"embedding": [0.1, 0.2]}


@pytest.mark.parametrize("answer", [{}, {"data": [{"index": 0}]}, {"data": "x"}])
def test_embeddings_without_vectors_are_an_error(answer):
    with pytest.raises(UpstreamError, match="without data"):
        to_ollama_embed(answer, "m", 0)
