"""Translate a complete Ollama ``/api/chat`` response into a Responses API Response."""

from __future__ import annotations

from ollama_proxy.translate.responses._common import (
    NewId,
    function_call_item,
    message_item,
    output_logprobs,
    reasoning_item,
    response_object,
    token_usage,
)
from ollama_proxy.translate.responses.tools import ToolSet


def to_responses_response(ollama_resp: dict, *, response_id: str, created_at: int, model: str,
                          new_id: NewId, request: dict) -> dict:
    """Translate a complete Ollama /api/chat response into a Responses API response."""
    message = ollama_resp.get("message") or {}
    truncated = ollama_resp.get("done_reason") == "length"
    output = []
    if message.get("thinking"):
        output.append(reasoning_item(new_id("rs_"), message["thinking"]))
    text, calls = message.get("content") or "", message.get("tool_calls") or []
    # An empty answer is still a message, so clients always find one.
    if text or not (output or calls):
        status = "incomplete" if truncated else "completed"
        output.append(message_item(new_id("msg_"), text, output_logprobs(ollama_resp), status))
    tools = ToolSet.of(request)
    output.extend(function_call_item(new_id("fc_"), call, new_id, tools) for call in calls)
    return response_object(request, response_id, created_at, model, output=output,
                           status="incomplete" if truncated else "completed", usage=token_usage(ollama_resp))
