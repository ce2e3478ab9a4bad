"""Table tests for the estimate of an Anthropic request's input tokens."""

from __future__ import annotations

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic.tokens import count_tokens
from tests.unit.translate.anthropic.helpers import PNG, USER_HI

COUNT_CASES = [
    pytest.param({"messages": [{"role": "user", "content": "abcdefgh"}]}, 2 + 4, id="one short message"),
    pytest.param({"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 40}]}, 20 + 8,
                 id="system counts as a message"),
    pytest.param({"system": [{"type": "text", "text": "abcd"}], "messages": [{"role": "user", "content": [
        {"type": "text", "text": "abcd"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG * 100}}]}]},
        2 + 8 + 1600, id="image at a flat cost, not its base64 length"),
    pytest.param({"messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "abcd"},
                                          {"type": "redacted_thinking", "data": "z" * 400},
                                          {"type": "tool_use", "id": "t", "name": "ab", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "abcd"}]}]},
        5 + 8, id="thinking, tool_use and tool_result; redacted not counted"),
    pytest.param({"messages": USER_HI, "tools": [{"name": "t", "input_schema": {}}]}, 9 + 4,
                 id="tool definitions as JSON"),
    pytest.param({"messages": []}, 0, id="nothing"),
]


@pytest.mark.parametrize(("body", "expected"), COUNT_CASES)
def test_count_tokens(body, expected):
    assert count_tokens(body) == expected


@pytest.mark.parametrize(("body", "param"), [
    pytest.param({"messages": "hi"}, "messages", id="messages not a list"),
    pytest.param({"messages": [], "tools": {}}, "tools", id="tools not a list"),
])
def test_count_tokens_refuses(body, param):
    with pytest.raises(InvalidRequest) as caught:
        count_tokens(body)
    assert caught.value.param == param
