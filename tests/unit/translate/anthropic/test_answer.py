"""Table tests for the finished Ollama chat response -> Anthropic Message translation."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.anthropic.answer import to_anthropic_message
from tests.unit.translate.new_ids import counter_ids


def message(content, stop_reason="end_turn", input_tokens=10, output_tokens=5):
    """Return the Anthropic Message expected from ``RESPONSE_CASES``."""
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


METRICS = {"done": True, "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5}

RESPONSE_CASES = [
    pytest.param({"message": {"role": "assistant", "content": "Hello"}, **METRICS},
                 message([{"type": "text", "text": "Hello"}]), id="text"),
    pytest.param({"message": {"role": "assistant", "content": "Hi", "thinking": "greet"}, **METRICS},
                 message([{"type": "thinking", "thinking": "greet", "signature": ""},
                          {"type": "text", "text": "Hi"}]), id="thinking then text"),
    pytest.param({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
        {"id": "call_9", "function": {"name": "time", "arguments": '{"tz": "UTC"}'}}]}, **METRICS},
        message([{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                 {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {"tz": "UTC"}}], "tool_use"),
        id="two tool calls, string arguments parsed, empty text left out"),
    pytest.param({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "x", "arguments": "not json"}}]}, **METRICS},
        message([{"type": "tool_use", "id": "toolu_1", "name": "x", "input": {"_raw_arguments": "not json"}}],
                "tool_use"), id="unparsable arguments kept"),
    pytest.param({"message": {"role": "assistant", "content": "Once upon"}, **METRICS, "done_reason": "length"},
                 message([{"type": "text", "text": "Once upon"}], "max_tokens"), id="length is max_tokens"),
    pytest.param({"message": {"role": "assistant", "content": ""}, "done": True},
                 message([], input_tokens=0, output_tokens=0), id="empty response without metrics"),
]


@pytest.mark.parametrize(("ollama_resp", "expected"), RESPONSE_CASES)
def test_to_anthropic_message(ollama_resp, expected):
    assert to_anthropic_message(ollama_resp, message_id="msg_1", model="claude-x", new_id=counter_ids()) == expected
