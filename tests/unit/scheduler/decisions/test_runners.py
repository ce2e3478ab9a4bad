"""How Ollama runs a model, read from /api/show: its slots and its keys' and values' bytes a token."""

import pytest

from ollama_proxy.scheduler.decisions.runners import KV_BYTES_UNKNOWN, kv_bytes_per_token, one_slot, train_context

LLAMA_8B = {"general.architecture": "llama", "llama.block_count": 32, "llama.attention.head_count": 32,
            "llama.attention.head_count_kv": 8, "llama.embedding_length": 4096}


@pytest.mark.parametrize("shown, alone", [
    ({"capabilities": ["completion", "tools"], "details": {"family": "llama"}}, False),
    ({"capabilities": ["embedding"], "details": {"family": "nomic-bert"}}, True),  # an embedding model
    ({"capabilities": ["completion", "vision"], "details": {"family": "qwen3vl"}}, True),  # server/sched.go's list
    ({"capabilities": ["completion"], "model_info": {"general.architecture": "qwen3next"}}, True),
    ({"details": {"family": "llama"}}, False),  # an Ollama too old to show capabilities
    ({}, False),
])
def test_ollama_runs_embedding_models_and_some_architectures_on_one_slot(shown, alone):
    assert one_slot(shown) is alone


@pytest.mark.parametrize("info, kv_bytes", [
    (LLAMA_8B, 32 * 8 * (128 + 128) * 2),  # 128 KiB: head size from the width
    ({**LLAMA_8B, "llama.attention.key_length": 192, "llama.attention.value_length": 128}, 32 * 8 * 320 * 2),
    ({**LLAMA_8B, "llama.attention.head_count_kv": [0, 8, 4]}, 32 * 8 * 256 * 2),  # per layer: the largest
    ({**LLAMA_8B, "llama.attention.head_count_kv": None}, 32 * 32 * 256 * 2),  # no grouping: every head
    ({"general.architecture": "llama"}, KV_BYTES_UNKNOWN),
    ({}, KV_BYTES_UNKNOWN),
])
def test_a_tokens_keys_and_values_take_two_vectors_a_layer_in_f16(info, kv_bytes):
    assert kv_bytes_per_token({"model_info": info}) == kv_bytes


def test_the_training_context_is_read_from_model_info_and_none_when_unsaid():
    assert train_context({"model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}}) == 40960
    assert train_context({"model_info": {"general.architecture": "qwen3"}}) is None
    assert train_context({}) is None
