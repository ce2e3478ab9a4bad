"""Share the helpers of several Anthropic translators: a field check, and Ollama's answer fields.

``stop_sequence``: Ollama says ``done_reason: "stop"`` both at the end of a
turn and at a stop sequence, and strips the sequence, so a match cannot be
told apart: ``stop_reason`` is ``end_turn`` and ``stop_sequence`` is null.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.ollama import cached_prompt_tokens

NewId = Callable[[str], str]


def required_string(block: dict, name: str, where: str) -> str:
    """Return a required string field of a block."""
    value = block.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{name} must be a string", param=f"{where}.{name}")
    return value


def tool_input(arguments: Any) -> dict:
    """Return tool arguments as the object Anthropic's ``input`` must be."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    if isinstance(arguments, dict):
        return arguments
    # Not an object: keep what the model wrote rather than lose it.
    return {"_raw_arguments": arguments}


def stop_reason(ollama_resp: dict, tool_used: bool) -> str:
    """Map Ollama's ``done_reason`` to Anthropic's ``stop_reason``."""
    if tool_used:
        return "tool_use"
    if ollama_resp.get("done_reason") == "length":
        return "max_tokens"
    return "end_turn"


def token_usage(ollama_resp: dict) -> dict:
    """Return Anthropic usage from Ollama's counters (absent counts are 0).

    Anthropic's input figures part the prompt: ``input_tokens`` not read from cache, ``cache_read_input_tokens``
    read from it, told only where Ollama tells it (no release up to 0.33 does). Unsaid, it is left out (Anthropic's
    usage allows it absent or null; Ollama's own Messages API never sends it) and ``input_tokens`` is every prompt
    token, as ``prompt_eval_count`` counts them.
    """
    usage = {"input_tokens": ollama_resp.get("prompt_eval_count") or 0,
             "output_tokens": ollama_resp.get("eval_count") or 0}
    cached = cached_prompt_tokens(ollama_resp)
    if cached is not None:
        cached = min(cached, usage["input_tokens"])
        usage.update(input_tokens=usage["input_tokens"] - cached, cache_read_input_tokens=cached)
    return usage
