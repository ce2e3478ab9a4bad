"""Refuse field names that an upstream would read as another field (pure, no I/O).

Ollama decodes bodies with Go's ``encoding/json``, which matches a key to a struct
field case-insensitively and lets the last of several keys naming one field win:
``{"model": "llama3.2", "Model": "qwen3:32b"}`` is checked here as llama3.2 and run
there as qwen3:32b. Some OpenAI-compatible providers are written in Go as well. So
a key that is not a known field name, but folds (as Go folds) to one, is refused:
what the upstream runs is then exactly what the policy checked. Only the levels
that upstreams decode into structs are checked: the top of a body and each message
or input item; anything below (tool schemas, ``format``, arguments) is the
client's own data, where ``Name`` and ``name`` may both mean something.

A field given twice at the top of a body (``"options"`` and ``"\\u006fptions"``, which
is the same key escaped) is refused too: Go does not keep only the last of them,
it decodes each into the same field, so a second ``options`` object is merged into
the first and Ollama would run options the proxy never read.
"""

from __future__ import annotations

from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.go_names import fold

# Fields of request bodies, over every surface and upstream: Ollama's request structs, OpenAI's
# chat, completions, embeddings and Responses requests (with OpenRouter's fields), Anthropic's
# Messages request, and this proxy's extras.
BODY_FIELDS = frozenset({
    # Ollama
    "model", "name", "prompt", "suffix", "system", "template", "context", "stream", "raw", "format",
    "keep_alive", "images", "options", "think", "truncate", "shift", "_debug_render_only", "logprobs",
    "top_logprobs", "messages", "tools", "input", "dimensions", "verbose", "insecure", "username",
    "password", "quantize", "draft_quantize", "from", "remote_host", "files", "draft_files", "adapters",
    "license", "parameters", "renderer", "parser", "requires", "info", "quantization", "source",
    "destination",
    # OpenAI
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "max_completion_tokens",
    "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
    "stop", "store", "stream_options", "temperature", "tool_choice", "top_p", "user", "verbosity",
    "web_search_options", "best_of", "echo", "encoding_format", "instructions", "max_output_tokens",
    "max_tool_calls", "previous_response_id", "reasoning", "text", "include", "background", "conversation",
    "truncation",
    # OpenRouter
    "models", "route", "provider", "transforms", "plugins", "usage",
    # Anthropic
    "stop_sequences", "top_k", "thinking", "container", "mcp_servers", "output_config", "context_management",
    # this proxy
    "num_ctx", "exclude_reasoning",
})
# Fields of a message (Ollama, OpenAI, Anthropic) or of a Responses input item.
ITEM_FIELDS = frozenset({
    "role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id", "name",
    "function_call", "refusal", "audio", "reasoning_content", "reasoning", "type", "id", "call_id",
    "output", "arguments", "status", "summary", "encrypted_content",
})
# Fields of a body holding a list of messages or items.
ITEM_LISTS = ("messages", "input")


def _by_fold(names: frozenset[str]) -> dict[str, str]:
    return {fold(name): name for name in names}


_BODY_BY_FOLD = _by_fold(BODY_FIELDS)
_ITEM_BY_FOLD = _by_fold(ITEM_FIELDS)


def lookalike(key: str, names: frozenset[str], by_fold: dict[str, str]) -> str | None:
    """Return the field a key would be read as, when it is not spelt as that field; else None."""
    if key in names:
        return None
    return by_fold.get(fold(key))


def check_field_names(body: dict) -> None:
    """Refuse a body with a key that an upstream would read as another field than the one named."""
    _check(body, BODY_FIELDS, _BODY_BY_FOLD, "")
    for list_name in ITEM_LISTS:
        items = body.get(list_name)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    _check(item, ITEM_FIELDS, _ITEM_BY_FOLD, f"{list_name}[{index}].")


def _check(obj: dict, names: frozenset[str], by_fold: dict[str, str], prefix: str) -> None:
    for key in obj:
        field = lookalike(key, names, by_fold)
        if field is not None:
            raise InvalidRequest(f"{prefix}{key}: field names are case-sensitive; did you mean '{field}'? "
                                 "(upstreams would read it as that field)", param=f"{prefix}{key}")


def unrepeated_fields(pairs: list[tuple[str, Any]]) -> dict:
    """Return the object of a body's top-level pairs, refusing a field given twice.

    ``pairs`` are the keys as decoded (escapes read), in order, repeats kept. A key
    spelt otherwise than its field (``Options``) is left to ``check_field_names``,
    and keys naming no field are let be, as it lets them be.
    """
    given: set[str] = set()
    for key, _ in pairs:
        if key not in BODY_FIELDS:
            continue
        if key in given:
            raise InvalidRequest(f"{key}: the field is given more than once (an escaped key, as \\u006f for 'o', is "
                                 "the same key); give it once: upstreams would merge the values or keep the last",
                                 param=key)
        given.add(key)
    return dict(pairs)
