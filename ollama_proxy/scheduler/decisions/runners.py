"""How Ollama runs a loaded model, from its ``/api/show`` answer: its slots, and a token's KV cache in bytes (pure).

Ollama 0.30 and later start a ``llama-server`` per loaded model with ``-np`` slots:
``OLLAMA_NUM_PARALLEL`` of them, but one for an embedding model (no ``completion``
capability) and for the architectures its scheduler does not run in parallel
(``server/sched.go``). Each llama-server keeps a RAM prompt cache of 8 GiB, whose room
in tokens depends on the size of a token's keys and values: two vectors of
``head_count_kv`` heads per layer, f16 unless the server is told otherwise.
"""

from __future__ import annotations

# server/sched.go: "Some architectures are not safe with num_parallel > 1."
SINGLE_SLOT_FAMILIES = frozenset({"mllama", "qwen3vl", "qwen3vlmoe", "qwen35", "qwen35moe", "qwen3next", "lfm2",
                                  "lfm2moe", "nemotron_h", "nemotron_h_moe", "nemotron_h_omni"})
KV_BYTES_UNKNOWN = 128 * 1024  # a token's keys and values when the model does not say: an 8B model's, in f16
F16_BYTES = 2


def one_slot(shown: dict) -> bool:
    """Whether Ollama runs the model ``/api/show`` describes with one slot, whatever OLLAMA_NUM_PARALLEL says."""
    capabilities = shown.get("capabilities")
    if isinstance(capabilities, list) and "completion" not in capabilities:
        return True
    details = shown.get("details") if isinstance(shown.get("details"), dict) else {}
    info = shown.get("model_info") if isinstance(shown.get("model_info"), dict) else {}
    families = {details.get("family"), info.get("general.architecture")}
    return bool(families & SINGLE_SLOT_FAMILIES)


def kv_bytes_per_token(shown: dict) -> int:
    """The bytes of keys and values one token of context takes (f16), from ``model_info``; a default if unsaid."""
    info = shown.get("model_info") if isinstance(shown.get("model_info"), dict) else {}
    architecture = info.get("general.architecture")
    if not isinstance(architecture, str):
        return KV_BYTES_UNKNOWN
    layers = _number(info, f"{architecture}.block_count")
    heads = _number(info, f"{architecture}.attention.head_count")
    heads_kv = _number(info, f"{architecture}.attention.head_count_kv") or heads
    width = _number(info, f"{architecture}.embedding_length")
    key = _number(info, f"{architecture}.attention.key_length") or (width // heads if width and heads else 0)
    value = _number(info, f"{architecture}.attention.value_length") or key
    if not (layers and heads_kv and key):
        return KV_BYTES_UNKNOWN
    return layers * heads_kv * (key + value) * F16_BYTES


def train_context(shown: dict) -> int | None:
    """The context the model was trained on (``model_info``), which Ollama caps any ``num_ctx`` at; None if unsaid."""
    info = shown.get("model_info") if isinstance(shown.get("model_info"), dict) else {}
    architecture = info.get("general.architecture")
    return (_number(info, f"{architecture}.context_length") or None) if isinstance(architecture, str) else None


def _number(info: dict, key: str) -> int:
    value = info.get(key)
    if isinstance(value, list):  # per-layer head counts: the largest bounds the cache
        value = max((v for v in value if isinstance(v, int)), default=0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
