"""Sequence tests for the Ollama chat chunks -> Anthropic stream events conversion."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter
from tests.unit.translate.new_ids import counter_ids


# Expected stream events, spelled out once.
def start(input_tokens=0):
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


def block_start(index, block):
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index, **fields):
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields})


def block_stop(index):
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def thinking_block(index, *texts):
    return [block_start(index, {"type": "thinking", "thinking": "", "signature": ""}),
            *[delta(index, type="thinking_delta", thinking=t) for t in texts],
            delta(index, type="signature_delta", signature=""), block_stop(index)]


def text_block(index, *texts):
    return [block_start(index, {"type": "text", "text": ""}),
            *[delta(index, type="text_delta", text=t) for t in texts], block_stop(index)]


def tool_block(index, tool_id, name, partial_json):
    return [block_start(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}}),
            delta(index, type="input_json_delta", partial_json=partial_json), block_stop(index)]


def end(stop_reason="end_turn", input_tokens=10, output_tokens=5):
    return [("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                               "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}),
            ("message_stop", {"type": "message_stop"})]


def chunk(content="", thinking=None, tool_calls=None):
    message = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"model": "qwen3", "message": message, "done": False}


def done(content="", done_reason="stop", **fields):
    return {"model": "qwen3", "message": {"role": "assistant", "content": content, **fields}, "done": True,
            "done_reason": done_reason, "prompt_eval_count": 10, "eval_count": 5}


WEATHER_CALL = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
TIME_CALL = {"function": {"name": "time", "arguments": {}}}
PING = ("ping", {"type": "ping"})

# Steps: an Ollama chunk (dict), "ping", or ("error", message).
STREAM_CASES = [
    pytest.param([chunk("Hel"), chunk("lo"), done()],
                 [start(), *text_block(0, "Hel", "lo"), *end()], id="text"),
    pytest.param([chunk(thinking="Let me"), chunk(thinking=" see"), chunk("Hi"), done()],
                 [start(), *thinking_block(0, "Let me", " see"), *text_block(1, "Hi"), *end()],
                 id="thinking then text"),
    pytest.param([chunk("Checking."), done(tool_calls=[WEATHER_CALL])],
                 [start(), *text_block(0, "Checking."), *tool_block(1, "toolu_1", "weather", '{"city": "Paris"}'),
                  *end("tool_use")], id="tool call in the done chunk"),
    pytest.param([chunk(tool_calls=[WEATHER_CALL, TIME_CALL]), done()],
                 [start(), *tool_block(0, "toolu_1", "weather", '{"city": "Paris"}'),
                  *tool_block(1, "toolu_2", "time", "{}"), *end("tool_use")], id="two parallel tool calls"),
    pytest.param([chunk(thinking="plan"), chunk(tool_calls=[TIME_CALL]), chunk("More"), done()],
                 [start(), *thinking_block(0, "plan"), *tool_block(1, "toolu_1", "time", "{}"),
                  *text_block(2, "More"), *end("tool_use")], id="thinking, tool call, text"),
    pytest.param([done()], [start(10), *end()], id="empty completion"),
    pytest.param([chunk("Hi"), {"model": "qwen3", "done": True, "done_reason": "stop", "prompt_eval_count": 10,
                                "eval_count": 5, "total_duration": 123}],
                 [start(), *text_block(0, "Hi"), *end()], id="metrics-only trailer"),
    pytest.param([chunk("Once"), done(done_reason="length")],
                 [start(), *text_block(0, "Once"), *end("max_tokens")], id="length is max_tokens"),
    pytest.param([{**chunk("Hi"), "prompt_eval_count": 7}, done()],
                 [start(7), *text_block(0, "Hi"), *end()], id="input tokens known at the start"),
    pytest.param(["ping", "ping", chunk("Hi"), done(), "ping"],
                 [start(), PING, PING, *text_block(0, "Hi"), *end()], id="pings while loading, none after the end"),
    pytest.param([chunk("Hi"), {"error": "model runner crashed"}, chunk("more"), done()],
                 [start(), *text_block(0, "Hi")[:2],
                  ("error", {"type": "error", "error": {"type": "api_error", "message": "model runner crashed"}})],
                 id="error chunk mid-stream ends the stream"),
    pytest.param([chunk("Hi"), ("error", "upstream timed out"), ("error", "again")],
                 [start(), *text_block(0, "Hi")[:2],
                  ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream timed out"}})],
                 id="caller reports a failure once"),
    pytest.param([{"error": "model not found"}, chunk("Hi")],
                 [("error", {"type": "error", "error": {"type": "api_error", "message": "model not found"}})],
                 id="error first: no message_start"),
    pytest.param([done(), ("error", "late")], [start(10), *end()], id="no error after the end"),
]


def run(steps):
    """Feed ``steps`` to a fresh converter and return every event it produced."""
    converter = MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids())
    events = []
    for step in steps:
        if step == "ping":
            events += converter.ping()
        elif isinstance(step, tuple):
            events += converter.error(step[1])
        else:
            events += converter.process(step)
    return events


@pytest.mark.parametrize(("steps", "expected"), STREAM_CASES)
def test_stream(steps, expected):
    assert run(steps) == expected
