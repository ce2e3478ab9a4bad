"""Table tests for the estimate of an Anthropic request's prompt tokens."""

from __future__ import annotations

import math

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic import tokens
from ollama_proxy.translate.anthropic.tokens import Estimate, count_tokens, estimate, text_tokens
from tests.unit.translate.anthropic.helpers import PNG, USER_HI

PROMPT, MESSAGE, TOOLS, CALL, IMAGE = 10, 5, 100, 6, 1600
CALL_JSON = 15.75  # {"name": "ab", "arguments": {"a": 1}}: 4 words, "arguments" long, 1 spaced digit, 9 runs, "}}"
TOOL_JSON = 21.25  # {"type": "function", "function": {"name": "t", "parameters": {}}}: 6 words, 3 long, 13 runs, "{}}}"

TEXT_CASES = [
    pytest.param("", 0, id="nothing"),
    pytest.param("hi", 1, id="a word is a token"),
    pytest.param("hello world", 2, id="the space before a word is part of it"),
    pytest.param("abcdefgh", 1.5, id="a long word: half a token more for each seven letters"),
    pytest.param("x" * 14, 2, id="a very long word"),
    pytest.param("in 2024", 6, id="a digit a token, the space before a number one more"),
    pytest.param("Hello, world!", 4, id="a run of punctuation is a token"),
    pytest.param("f(x));", 4.5, id="each mark after a run's first a quarter more"),
    pytest.param('"a": "b"', 6, id="quotes merge with the marks beside them"),
    pytest.param("a\n\n\nb", 4, id="line breaks: a blank line goes with its break"),
    pytest.param("a\tb  c", 4, id="a tab or a run of spaces inside a line is half a token"),
    pytest.param("\n    return x", 3, id="indentation goes with its line break"),
    pytest.param("Привет", 6, id="other scripts: half a token a UTF-8 byte"),
    pytest.param("日本", 3, id="CJK: three bytes a character"),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_text_tokens(text, expected):
    assert text_tokens(text) == expected


@pytest.mark.parametrize("text", [
    pytest.param("".join(case.values[0] for case in TEXT_CASES) * 3, id="every case, one after another"),
    pytest.param("word " * 9 + " " * 30 + "a" * 30 + "!" * 30 + "\n" * 9 + "1 2 34 " * 5, id="long runs"),
    pytest.param("\t\t x\t  y\r\n\n\n  \"q\": [1, 2]," * 7, id="gaps, breaks and marks"),
])
def test_a_long_text_is_counted_a_piece_at_a_time_as_whole(monkeypatch, text):
    whole = tokens._text_tokens(text)
    monkeypatch.setattr(tokens, "_PIECE_CHARS", 5)
    monkeypatch.setattr(tokens, "_CUT_WINDOW", 3)
    assert len(list(tokens._pieces(text))) > 10
    assert tokens._text_tokens(text) == whole


COUNT_CASES = [
    pytest.param({"messages": [{"role": "user", "content": "abcdefgh"}]}, math.ceil(PROMPT + MESSAGE + 1.5),
                 id="one short message"),
    pytest.param({"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 40}]},
                 PROMPT + (MESSAGE + 3.5) * 2, id="system counts as a message"),
    pytest.param({"system": [{"type": "text", "text": "abcd"}], "messages": [{"role": "user", "content": [
        {"type": "text", "text": "abcd"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG * 100}}]}]},
        PROMPT + (MESSAGE + 1) * 2 + IMAGE, id="image at a flat cost, not its base64 length"),
    pytest.param({"messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "abcd"},
                                          {"type": "redacted_thinking", "data": "z" * 400},
                                          {"type": "tool_use", "id": "t", "name": "ab", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "abcd"}]}]},
        math.ceil(PROMPT + MESSAGE + 1 + CALL + CALL_JSON + MESSAGE + MESSAGE + 1),
        id="thinking, tool_use and tool_result (a message of its own); redacted not counted"),
    pytest.param({"messages": USER_HI, "tools": [{"name": "t", "input_schema": {}}]},
                 math.ceil(PROMPT + MESSAGE + 1 + TOOLS + TOOL_JSON),
                 id="tool definitions as Ollama gets them, as JSON"),
    pytest.param({"messages": []}, 0, id="nothing"),
]


@pytest.mark.parametrize(("body", "expected"), COUNT_CASES)
def test_count_tokens(body, expected):
    assert count_tokens(body) == expected


def test_the_estimate_keeps_images_apart():
    body = {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]}
    assert estimate(body) == Estimate(PROMPT + MESSAGE * 2, images=2)
    assert estimate(body).tokens == PROMPT + MESSAGE * 2 + 2 * IMAGE


def test_long_texts_are_remembered_within_a_bound(monkeypatch):
    monkeypatch.setattr(tokens, "_remembered", {})
    monkeypatch.setattr(tokens, "_CACHE_ENTRIES", 2)
    texts = [f"{word} " * 1000 for word in ("alpha", "beta", "gamma")]
    first = [text_tokens(text) for text in texts]
    assert first == [1000, 1000, 1000]
    assert len(tokens._remembered) == 2
    assert [text_tokens(text) for text in texts] == first


@pytest.mark.parametrize(("body", "param"), [
    pytest.param({"messages": "hi"}, "messages", id="messages not a list"),
    pytest.param({"messages": [], "tools": {}}, "tools", id="tools not a list"),
])
def test_count_tokens_refuses(body, param):
    with pytest.raises(InvalidRequest) as caught:
        count_tokens(body)
    assert caught.value.param == param
