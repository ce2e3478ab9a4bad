"""The answer's text, read back from what each surface sent."""

from __future__ import annotations

import json

import pytest

from ollama_proxy.translate.answer_text import answer_text

NDJSON, SSE, JSON = "application/x-ndjson", "text/event-stream", "application/json"


def ndjson(*objects) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def sse(*objects, done: bool = False) -> bytes:
    events = [f"data: {json.dumps(o)}\n\n" for o in objects] + (["data: [DONE]\n\n"] if done else [])
    return "".join(events).encode()


CASES = {
    "native chat stream": (NDJSON, ndjson({"message": {"role": "assistant", "content": "Hel"}},
                                          {"message": {"role": "assistant", "content": "lo", "thinking": "x"}},
                                          {"message": {"role": "assistant", "content": ""}, "done": True}),
                           "Hello"),
    "native generate whole": (JSON, json.dumps({"response": "Hi there", "done": True}).encode(), "Hi there"),
    "native stream cut mid-line": (NDJSON, ndjson({"response": "one "}) + b'{"response": "tw', "one "),
    "native error line": (NDJSON, ndjson({"response": "a"}, {"error": "model gone"}), "a"),
    "openai chat stream": (SSE, sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                                    {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
                                    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]},
                                    {"choices": [], "usage": {"prompt_tokens": 3}}, done=True), "Hi"),
    "openai chat whole": (JSON, json.dumps({"choices": [{"message": {"role": "assistant", "content": "Yes"}}]})
                          .encode(), "Yes"),
    "openai completion stream": (SSE, sse({"choices": [{"text": "ab"}]}, {"choices": [{"text": "c"}]}, done=True),
                                 "abc"),
    "anthropic stream": (SSE, b"event: message_start\n" + sse(
        {"type": "message_start", "message": {"content": []}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Sure"}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{"}},
        {"type": "message_stop"}), "Sure"),
    "anthropic whole": (JSON, json.dumps({"type": "message", "content": [
        {"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "A"}, {"type": "tool_use", "id": "t"},
        {"type": "text", "text": "B"}]}).encode(), "AB"),
    "responses stream": (SSE, sse({"type": "response.created", "response": {"output": []}},
                                  {"type": "response.output_text.delta", "delta": "Par"},
                                  {"type": "response.output_text.delta", "delta": "is"},
                                  {"type": "response.completed", "response": {"object": "response", "output": [
                                      {"type": "message", "content": [{"type": "output_text", "text": "Paris"}]}]}}),
                         "Paris"),
    "responses whole": (JSON, json.dumps({"object": "response", "output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "Paris"}]}]}).encode(), "Paris"),
    "not json": ("text/plain", b"oops", ""),
}


@pytest.mark.parametrize("name", CASES)
def test_answer_text(name):
    content_type, body, text = CASES[name]
    assert answer_text(content_type, body) == text
