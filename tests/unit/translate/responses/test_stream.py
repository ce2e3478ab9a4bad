"""Sequence tests for the Ollama /api/chat chunks -> Responses API stream events conversion."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from ollama_proxy.translate.responses.stream import ResponsesStreamConverter
from tests.unit.translate.responses.helpers import (
    CLOSE_CALL,
    CODEX_REQUEST,
    CREATED,
    FULL_REQUEST,
    LOGPROBS,
    OPENAI_LOGPROBS,
    REQUEST,
    TOKYO,
    WEATHER,
    function_call,
    ids,
    message,
    namespaced_call,
    reasoning,
    response,
    sdk_client,
    text_part,
    usage,
)


class Failure:
    """A stream step standing for an upstream failure, fed to ``error()``."""

    def __init__(self, message):
        self.message = message


def run(steps, request=REQUEST):
    """Feed ``steps`` to a fresh converter and return every event it produced."""
    converter = ResponsesStreamConverter("resp_1", CREATED, "gpt-test", new_id=ids(), request=request)
    events = []
    for step in steps:
        events += converter.error(step.message) if isinstance(step, Failure) else converter.process(step)
    return events


def numbered(*events):
    """Number ``events`` from 0, as sequence_number does across a stream."""
    return [{"type": kind, "sequence_number": index, **fields} for index, (kind, fields) in enumerate(events)]


def chunk(content="", **fields):
    return {"model": "llama3.2", "message": {"role": "assistant", "content": content, **fields}, "done": False}


def done(content="", message_fields=None, **fields):
    return {"model": "llama3.2", "message": {"role": "assistant", "content": content, **(message_fields or {})},
            "done": True, "done_reason": "stop", **fields}


START = [("response.created", {"response": response([], status="in_progress")}),
         ("response.in_progress", {"response": response([], status="in_progress")})]
IN_PROGRESS_MSG = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}


def message_events(index, text_deltas, status="completed", item_id="msg_1"):
    """Return the events of one streamed message item: added, deltas, done."""
    where = {"item_id": item_id, "output_index": index}
    text = "".join(text_deltas)
    return [("response.output_item.added", {"output_index": index, "item": {**IN_PROGRESS_MSG, "id": item_id}}),
            ("response.content_part.added", {**where, "content_index": 0, "part": text_part("")}),
            *[("response.output_text.delta", {**where, "content_index": 0, "delta": delta, "logprobs": []})
              for delta in text_deltas],
            ("response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}),
            ("response.content_part.done", {**where, "content_index": 0, "part": text_part(text)}),
            ("response.output_item.done", {"output_index": index, "item": message(item_id, text, status)})]


def call_events(index, item):
    """Return the events of one function call item."""
    where = {"item_id": item["id"], "output_index": index}
    return [("response.output_item.added", {"output_index": index,
                                            "item": {**item, "status": "in_progress", "arguments": ""}}),
            ("response.function_call_arguments.delta", {**where, "delta": item["arguments"]}),
            ("response.function_call_arguments.done", {**where, "arguments": item["arguments"]}),
            ("response.output_item.done", {"output_index": index, "item": item})]


RS = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
TOKYO_CALL = function_call("fc_1", "call_1", "get_weather", '{"city":"Tokyo"}')

STREAM_CASES = [
    pytest.param(
        [chunk(thinking="Let me"), chunk(thinking=" think."), chunk("Hi"), chunk(" there"),
         done(prompt_eval_count=10, eval_count=5)],
        numbered(*START,
                 ("response.output_item.added", {"output_index": 0,
                                                 "item": {"id": "rs_1", "type": "reasoning", "summary": []}}),
                 ("response.reasoning_summary_part.added", {**RS, "part": {"type": "summary_text", "text": ""}}),
                 ("response.reasoning_summary_text.delta", {**RS, "delta": "Let me"}),
                 ("response.reasoning_summary_text.delta", {**RS, "delta": " think."}),
                 ("response.reasoning_summary_text.done", {**RS, "text": "Let me think."}),
                 ("response.reasoning_summary_part.done",
                  {**RS, "part": {"type": "summary_text", "text": "Let me think."}}),
                 ("response.output_item.done", {"output_index": 0, "item": reasoning("rs_1", "Let me think.")}),
                 *message_events(1, ["Hi", " there"]),
                 ("response.completed", {"response": response(
                     [reasoning("rs_1", "Let me think."), message("msg_1", "Hi there")], usage(10, 5))})),
        id="thinking then text"),
    pytest.param(
        [chunk(), done(message_fields={"tool_calls": [TOKYO]}, prompt_eval_count=169, eval_count=15)],
        numbered(*START, *call_events(0, TOKYO_CALL),
                 ("response.completed", {"response": response([TOKYO_CALL], usage(169, 15))})),
        id="tool call in the done chunk"),
    pytest.param(
        [chunk(tool_calls=[{"id": "call_a", **TOKYO}, {"function": {"name": "get_time", "arguments": {}}}]),
         done()],
        numbered(*START,
                 *call_events(0, function_call("fc_1", "call_a", "get_weather", '{"city":"Tokyo"}')),
                 *call_events(1, function_call("fc_2", "call_1", "get_time", "{}")),
                 ("response.completed", {"response": response(
                     [function_call("fc_1", "call_a", "get_weather", '{"city":"Tokyo"}'),
                      function_call("fc_2", "call_1", "get_time", "{}")], usage(0, 0))})),
        id="two parallel tool calls"),
    pytest.param(
        [chunk("Checking."), chunk(tool_calls=[TOKYO]), done()],
        numbered(*START, *message_events(0, ["Checking."]),
                 *call_events(1, TOKYO_CALL),
                 ("response.completed", {"response": response(
                     [message("msg_1", "Checking."), TOKYO_CALL], usage(0, 0))})),
        id="text then a tool call"),
    pytest.param(
        [done()],
        numbered(*START, *message_events(0, []),
                 ("response.completed", {"response": response([message("msg_1", "")], usage(0, 0))})),
        id="empty completion"),
    pytest.param(
        [chunk("Hi"), {"model": "llama3.2", "done": True, "done_reason": "stop", "total_duration": 1,
                       "prompt_eval_count": 3, "eval_count": 1}],
        numbered(*START, *message_events(0, ["Hi"]),
                 ("response.completed", {"response": response([message("msg_1", "Hi")], usage(3, 1))})),
        id="metrics-only trailer"),
    pytest.param(
        [chunk("Once"), done(" upon", done_reason="length", eval_count=2)],
        numbered(*START, *message_events(0, ["Once", " upon"], "incomplete"),
                 ("response.incomplete", {"response": response(
                     [message("msg_1", "Once upon", "incomplete")], usage(0, 2), "incomplete")})),
        id="length: incomplete"),
    pytest.param(
        [chunk("Par"), Failure("upstream closed the connection")],
        numbered(*START, *message_events(0, ["Par"])[:3],
                 ("response.failed", {"response": response(
                     [message("msg_1", "Par", "incomplete")], status="failed",
                     error={"code": "server_error", "message": "upstream closed the connection"})})),
        id="failure mid-stream keeps the partial text"),
    pytest.param(
        [{"error": "model runner crashed"}, chunk("ignored"), Failure("again")],
        numbered(*START, ("response.failed", {"response": response(
            [], status="failed", error={"code": "server_error", "message": "model runner crashed"})})),
        id="Ollama error chunk first; nothing after the end"),
    pytest.param(
        [done("Hi"), chunk("late")],
        numbered(*START, *message_events(0, ["Hi"]),
                 ("response.completed", {"response": response([message("msg_1", "Hi")], usage(0, 0))})),
        id="nothing after done"),
]


@pytest.mark.parametrize(("steps", "expected"), STREAM_CASES)
def test_stream(steps, expected):
    assert run(steps) == expected


def test_stream_logprobs_follow_the_text():
    events = run([{**chunk("Hi"), "logprobs": LOGPROBS}, done()])
    deltas = [event for event in events if event["type"] == "response.output_text.delta"]
    assert [delta["logprobs"] for delta in deltas] == [OPENAI_LOGPROBS]
    final = events[-1]["response"]["output"]
    assert final == [message("msg_1", "Hi", logprobs=OPENAI_LOGPROBS)]


def test_stream_names_a_namespaced_call_as_declared():
    call = namespaced_call("fc_1", "call_1", "close_agent", "multi_agent_v1", '{"target":"a"}')
    events = run([chunk(tool_calls=[CLOSE_CALL]), done()], request=CODEX_REQUEST)
    assert events == numbered(
        *[(kind, {**fields, "response": {**fields["response"], "tools": CODEX_REQUEST["tools"]}})
          for kind, fields in START],
        *call_events(0, call),
        ("response.completed", {"response": response([call], usage(0, 0), tools=CODEX_REQUEST["tools"])}))
    for event in events:
        EVENT.validate_python(event)


def test_stream_echoes_the_request():
    events = run([done("{}")], request=FULL_REQUEST)
    assert events[0]["response"]["tools"] == [WEATHER]
    assert events[-1]["response"]["temperature"] == 0.5


EVENT = TypeAdapter(ResponseStreamEvent)


@pytest.mark.parametrize(("steps", "expected"), STREAM_CASES)
def test_stream_events_match_sdk_models(steps, expected):
    for event in run(steps):
        assert EVENT.validate_python(event).type == event["type"]


# --- the official SDK, end to end (no network: httpx.MockTransport) ----------------------

def sse(events) -> bytes:
    return "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events).encode()


@pytest.mark.parametrize(("steps", "text", "types"), [
    pytest.param([chunk(thinking="Hm."), chunk("Hi"), chunk(" there"), done()], "Hi there",
                 ["reasoning", "message"], id="thinking then text"),
    pytest.param([chunk("Checking."), done(message_fields={"tool_calls": [TOKYO, TOKYO]})], "Checking.",
                 ["message", "function_call", "function_call"], id="text then two tool calls"),
    pytest.param([done()], "", ["message"], id="empty completion"),
])
def test_sdk_stream_accumulates_the_events(steps, text, types):
    with sdk_client(sse(run(steps)), "text/event-stream") as client:
        with client.responses.stream(model="gpt-test", input="Hi") as stream:
            deltas = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
            final = stream.get_final_response()
    assert deltas == text
    assert final.output_text == text
    assert [item.type for item in final.output] == types


def test_sdk_stream_reports_failure():
    with sdk_client(sse(run([chunk("Par"), Failure("boom")])), "text/event-stream") as client:
        events = list(client.responses.create(model="gpt-test", input="Hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "boom"
