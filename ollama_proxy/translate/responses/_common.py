"""Build the Response object and its output items, for whole answers and streams alike."""

from __future__ import annotations

import json
from collections.abc import Callable

from ollama_proxy.translate.ollama import cached_prompt_tokens
from ollama_proxy.translate.responses.tools import ToolSet

NewId = Callable[[str], str]

#: Request fields the Response object echoes as sent (``None`` when absent).
_ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "reasoning", "temperature",
           "top_p", "top_logprobs", "truncation", "user", "safety_identifier", "prompt_cache_key",
           "service_tier")


def response_object(request: dict, response_id: str, created_at: int, model: str, *, output: list,
                    status: str, usage: dict | None = None, error: dict | None = None) -> dict:
    """Build a Response object, echoing the request fields the API echoes."""
    response = {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": model, "output": output, "usage": usage,
        "previous_response_id": None, "store": False, "background": False,
        "tools": request.get("tools") or [],
        "tool_choice": request.get("tool_choice") or "auto",
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "text": request.get("text") or {"format": {"type": "text"}},
        "metadata": request.get("metadata") or {},
    }
    response.update((key, request.get(key)) for key in _ECHOED)
    return response


def reasoning_item(item_id: str, thinking: str) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": thinking}]}


def output_text(text: str, logprobs: list) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def message_item(item_id: str, text: str, logprobs: list, status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [output_text(text, logprobs)]}


def function_call_item(item_id: str, call: dict, new_id: NewId, tools: ToolSet) -> dict:
    """Return the item of an Ollama tool call, named as the request declared the function."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # Ollama sends an object; the Responses API a JSON string
        arguments = json.dumps(arguments or {}, ensure_ascii=False, separators=(",", ":"))
    return {"id": item_id, "type": "function_call", "status": "completed",
            "call_id": call.get("id") or new_id("call_"), **tools.call_fields(function.get("name") or ""),
            "arguments": arguments}


def token_usage(ollama_resp: dict) -> dict:
    # Thinking tokens are not counted apart (0). Cached prompt tokens are Ollama's prompt_eval_cached_count where it
    # says it (no release up to 0.33 does); else 0, as Ollama's own Responses API sends: the Responses usage requires
    # input_tokens_details.cached_tokens, an integer, so "not said" has no shape of its own here.
    prompt = ollama_resp.get("prompt_eval_count") or 0
    completion = ollama_resp.get("eval_count") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached_prompt_tokens(ollama_resp) or 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def output_logprobs(ollama_chunk: dict) -> list[dict]:
    """Return a chunk's logprobs in OpenAI's shape (Ollama's is the same, fields optional)."""
    return [{**_token_logprob(entry),
             "top_logprobs": [_token_logprob(top) for top in entry.get("top_logprobs") or []]}
            for entry in ollama_chunk.get("logprobs") or []]


def _token_logprob(entry: dict) -> dict:
    token = entry.get("token") or ""
    return {"token": token, "logprob": entry.get("logprob") or 0.0,
            "bytes": entry.get("bytes") or list(token.encode())}
