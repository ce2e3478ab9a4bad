"""Table tests: which ``think`` a surface asked for, and when it is left out for a model that cannot think."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.anthropic.request import from_anthropic_messages
from ollama_proxy.translate.openai_chat import from_openai_chat
from ollama_proxy.translate.responses.request import from_responses_request
from ollama_proxy.translate.thinking import asks_to_think, fit_thinking, surface_asked_to_think

HI = [{"role": "user", "content": "hi"}]
CANNOT_THINK = frozenset({"completion", "tools"})
CAN_THINK = frozenset({"completion", "tools", "thinking"})


@pytest.mark.parametrize(("think", "on"), [
    (True, True), ("low", True), ("medium", True), ("high", True), ("max", True),
    (False, False), ("none", False), (None, False), ("", False), ("xhigh", False), (1, False),
])
def test_asks_to_think_as_ollama_reads_think(think, on):
    assert asks_to_think(think) is on


def anthropic(**fields):
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "messages": HI, **fields}


def openai(**fields):
    return {"model": "gpt-x", "messages": HI, **fields}


def responses(**fields):
    return {"model": "gpt-x", "input": "hi", **fields}


SURFACE_CASES = [
    pytest.param(from_anthropic_messages, anthropic(thinking={"type": "enabled", "budget_tokens": 31999}), True,
                 id="anthropic thinking enabled (Claude Code with a Claude model)"),
    pytest.param(from_anthropic_messages, anthropic(thinking={"type": "adaptive", "display": "omitted"},
                                                    output_config={"effort": "high"}), True,
                 id="anthropic thinking adaptive with an effort (Claude Code with another model)"),
    pytest.param(from_anthropic_messages, anthropic(thinking={"type": "disabled"}), False,
                 id="anthropic thinking disabled"),
    pytest.param(from_anthropic_messages, anthropic(), False, id="anthropic without thinking"),
    pytest.param(from_anthropic_messages, anthropic(thinking={"type": "enabled", "budget_tokens": 1024}, think=True),
                 False, id="anthropic with ollama's own think: the client's"),
    pytest.param(from_openai_chat, openai(reasoning_effort="medium"), True, id="openai reasoning_effort"),
    pytest.param(from_openai_chat, openai(reasoning={"effort": "high"}), True, id="openai reasoning.effort"),
    pytest.param(from_openai_chat, openai(reasoning_effort="none"), False, id="openai reasoning_effort none"),
    pytest.param(from_openai_chat, openai(reasoning_effort="high", think=True), False,
                 id="openai with ollama's own think: the client's"),
    pytest.param(from_responses_request, responses(reasoning={"effort": "low"}), True, id="responses reasoning"),
    pytest.param(from_responses_request, responses(reasoning={"effort": "none"}), False,
                 id="responses reasoning none"),
    pytest.param(from_responses_request, responses(reasoning={"effort": "low"}, think="low"), False,
                 id="responses with ollama's own think: the client's"),
]


@pytest.mark.parametrize(("translate", "body", "asked"), SURFACE_CASES)
def test_surface_asked_to_think(translate, body, asked):
    assert surface_asked_to_think(body, translate(body)) is asked


FIT_CASES = [
    pytest.param({"model": "m", "think": True}, CANNOT_THINK, {"model": "m"}, id="left out: cannot think"),
    pytest.param({"model": "m", "think": "high"}, CANNOT_THINK, {"model": "m"}, id="a level left out too"),
    pytest.param({"model": "m", "think": True}, CAN_THINK, {"model": "m", "think": True}, id="kept: can think"),
    pytest.param({"model": "m", "think": True}, None, {"model": "m", "think": True},
                 id="kept: capabilities unknown, the upstream judges"),
    pytest.param({"model": "m", "think": False}, CANNOT_THINK, {"model": "m", "think": False},
                 id="think false kept: asking not to think needs no capability"),
    pytest.param({"model": "m"}, CANNOT_THINK, {"model": "m"}, id="no think"),
]


@pytest.mark.parametrize(("body", "capabilities", "expected"), FIT_CASES)
def test_fit_thinking(body, capabilities, expected):
    before = dict(body)
    assert fit_thinking(body, capabilities) == expected
    assert body == before  # the body given is not changed
