"""Translate a finished Ollama chat response into an Anthropic Message.

Thinking is unsigned in Ollama: thinking blocks carry ``signature: ""``.
"""

from __future__ import annotations

from ollama_proxy.translate.anthropic._common import NewId, stop_reason, token_usage, tool_input


def to_anthropic_message(ollama_resp: dict, *, message_id: str, model: str, new_id: NewId) -> dict:
    """Translate a finished Ollama chat response into an Anthropic Message."""
    message = ollama_resp.get("message") or {}
    content: list[dict] = []
    if message.get("thinking"):
        content.append({"type": "thinking", "thinking": message["thinking"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    for call in calls:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": function.get("name", ""),
                        "input": tool_input(function.get("arguments"))})
    return {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop_reason(ollama_resp, bool(calls)),
        "stop_sequence": None, "usage": token_usage(ollama_resp),
    }
