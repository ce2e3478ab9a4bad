"""Values, expected Response parts and the SDK client shared by the Responses translator tests."""

from __future__ import annotations

import httpx
from openai import OpenAI

CREATED = 1700000000
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": True}


def ids():
    """Return a deterministic ``new_id``: one counter per prefix (msg_1, fc_1, fc_2, ...)."""
    counters: dict[str, int] = {}

    def new_id(prefix: str) -> str:
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}{counters[prefix]}"
    return new_id


def usage(prompt, completion):
    """Return the Responses usage for Ollama's token counts."""
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def response(output, usage=None, status="completed", **echoed):
    """Return the Response object expected for ``output``, echoing a bare request."""
    return {
        "id": "resp_1", "object": "response", "created_at": CREATED, "status": status, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": "gpt-test", "output": output, "usage": usage, "previous_response_id": None,
        "store": False, "background": False, "tools": [], "tool_choice": "auto",
        "parallel_tool_calls": True, "text": {"format": {"type": "text"}}, "metadata": {},
        "instructions": None, "max_output_tokens": None, "max_tool_calls": None, "reasoning": None,
        "temperature": None, "top_p": None, "top_logprobs": None, "truncation": None, "user": None,
        "safety_identifier": None, "prompt_cache_key": None, "service_tier": None, **echoed}


def text_part(text, logprobs=()):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": list(logprobs)}


def message(item_id, text, status="completed", logprobs=()):
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text, logprobs)]}


def reasoning(item_id, text):
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def function_call(item_id, call_id, name, arguments, status="completed"):
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


TOKYO = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
# Codex's shape: functions grouped in a namespace, and a hosted tool Ollama cannot run.
AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
          "tools": [{"type": "function", "name": "close_agent", "description": "Close", "strict": False,
                     "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}]}
CODEX_REQUEST = {"model": "gpt-test", "input": "Hi", "tools": [AGENTS, {"type": "web_search"}]}
CLOSE_CALL = {"function": {"name": "multi_agent_v1.close_agent", "arguments": {"target": "a"}}}


def namespaced_call(item_id, call_id, name, namespace, arguments, status="completed"):
    return {**function_call(item_id, call_id, name, arguments, status), "namespace": namespace}
REQUEST = {"model": "gpt-test", "input": "Hi"}
FULL_REQUEST = {
    "model": "gpt-test", "input": "Hi", "instructions": "Be brief.", "tools": [WEATHER],
    "tool_choice": "required", "temperature": 0.5, "top_p": 0.9, "max_output_tokens": 64,
    "parallel_tool_calls": False, "metadata": {"k": "v"}, "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "json_object"}}, "truncation": "disabled", "user": "u1", "top_logprobs": 2,
}
LOGPROBS = [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.25}]}]
OPENAI_LOGPROBS = [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105],
                    "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}]}]


def sdk_client(body: bytes, content_type: str) -> OpenAI:
    """Return an OpenAI client whose every request is answered with ``body``."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})
    return OpenAI(api_key="test", base_url="http://gateway.test/v1", max_retries=0,
                  http_client=httpx.Client(transport=httpx.MockTransport(answer)))
