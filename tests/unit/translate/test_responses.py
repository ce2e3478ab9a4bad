"""Table tests for the OpenAI Responses API <-> Ollama /api/chat translation."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.responses import (
    ResponsesStreamConverter,
    from_responses_request,
    to_responses_response,
)

PNG = "iVBORw0KGgo="
CREATED = 1700000000
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": True}
OLLAMA_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "name": "get_time"}
OLLAMA_TIME = {"type": "function", "function": {"name": "get_time"}}
HI = [{"role": "user", "content": "Hi"}]


def ids():
    """Return a deterministic ``new_id``: one counter per prefix (msg_1, fc_1, fc_2, ...)."""
    counters: dict[str, int] = {}

    def new_id(prefix: str) -> str:
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}{counters[prefix]}"
    return new_id


def chat(messages=None, **fields):
    """Return the Ollama body expected for a request to model ``m``."""
    return {"model": "m", "messages": HI if messages is None else messages, "stream": False, **fields}


# --- request ---------------------------------------------------------------------------

REQUEST_CASES = [
    pytest.param({"model": "m", "input": "Hi"}, chat(), id="string input is one user message"),
    pytest.param({"model": "m", "instructions": "Be brief.", "input": "Hi", "stream": True},
                 chat([{"role": "system", "content": "Be brief."}, *HI], stream=True),
                 id="instructions lead as a system message"),
    pytest.param({"model": "m", "input": [
        {"role": "developer", "content": "Rules"},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "More"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Look"},
                                     {"type": "input_text", "text": "here"}]},
        {"type": "message", "role": "assistant", "id": "msg_0", "status": "completed",
         "content": [{"type": "output_text", "text": "Seen", "annotations": []}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
    ]}, chat([{"role": "system", "content": "Rules"}, {"role": "system", "content": "More"},
              {"role": "user", "content": "Look\nhere"}, {"role": "assistant", "content": "Seen"},
              {"role": "assistant", "content": "I can't."}]),
        id="messages of every role and content shape"),
    pytest.param({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]},
        chat([{"role": "user", "content": "What?", "images": [PNG, "https://example.com/cat.png"]}]),
        id="images: data URI decoded, URL kept for the fetcher"),
    pytest.param({"model": "m", "input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs_0", "summary": [{"type": "summary_text", "text": "Two cities."}]},
        {"type": "function_call", "id": "fc_0", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Paris"}', "status": "completed"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]},
    ]}, chat([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "", "thinking": "Two cities.", "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_2", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "content": "18C", "tool_name": "get_weather", "tool_call_id": "call_1"},
        {"role": "tool", "content": "21C", "tool_name": "get_weather", "tool_call_id": "call_2"},
    ]), id="tool round trip: calls merge into one turn, outputs named by call_id"),
    pytest.param({"model": "m", "input": [
        *HI, {"role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": ""}]},
        chat([*HI, {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "function": {"name": "get_time", "arguments": {}}}]}]),
        id="text then a call is one assistant turn; empty arguments are {}"),
    pytest.param({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "call_9", "name": "snap", "output": [
            {"type": "input_text", "text": "Here"},
            {"type": "input_image", "image_url": "https://example.com/a.png"}]}]},
        chat([{"role": "tool", "content": "Here", "tool_name": "snap", "tool_call_id": "call_9",
               "images": ["https://example.com/a.png"]}]),
        id="tool output with an image; unknown call_id falls back to the item's name"),
    pytest.param({"model": "m", "input": [
        {"role": "user", "content": "a"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r1"}]},
        {"role": "assistant", "content": "b"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r2"}]},
        {"role": "user", "content": "c"},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA",
         "content": [{"type": "reasoning_text", "text": "raw"}]},
        {"role": "assistant", "content": "d"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "trailing"}]},
    ]}, chat([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "thinking": "r1"},
              {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "thinking": "raw"}]),
        id="reasoning goes to the assistant turn after it, or is dropped"),
    pytest.param({"model": "m", "input": "Hi", "tools": [WEATHER, TIME]},
                 chat(tools=[OLLAMA_WEATHER, OLLAMA_TIME]), id="function tools; strict dropped"),
    pytest.param({"model": "m", "input": "Hi", "tools": [WEATHER, TIME], "tool_choice": "required"},
                 chat(tools=[OLLAMA_WEATHER, OLLAMA_TIME]), id="tool_choice required sends all tools"),
    pytest.param({"model": "m", "input": "Hi", "tools": [WEATHER, TIME], "tool_choice": "none"},
                 chat(), id="tool_choice none sends no tools"),
    pytest.param({"model": "m", "input": "Hi", "tools": [WEATHER, TIME],
                  "tool_choice": {"type": "function", "name": "get_time"}},
                 chat(tools=[OLLAMA_TIME]), id="tool_choice function sends only that tool"),
    pytest.param({"model": "m", "input": "Hi", "tools": [WEATHER, TIME], "tool_choice": {
        "type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]}},
        chat(tools=[OLLAMA_WEATHER]), id="tool_choice allowed_tools filters the tools"),
    pytest.param({"model": "m", "input": "Hi", "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9,
                  "num_ctx": 8192},
                 chat(options={"temperature": 0.2, "top_p": 0.9, "num_predict": 50, "num_ctx": 8192}),
                 id="sampling fields and num_ctx go to options"),
    pytest.param({"model": "m", "input": "Hi", "temperature": 0.9, "options": {"temperature": 0.1, "seed": 7}},
                 chat(options={"temperature": 0.1, "seed": 7}), id="the client's own options win"),
    pytest.param({"model": "m", "input": "Hi", "reasoning": {"effort": "high"}, "think": False,
                  "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
                  "format": "json", "keep_alive": "10m"},
                 chat(think=False, format="json", keep_alive="10m"),
                 id="Ollama's own think, format and keep_alive win"),
    pytest.param({"model": "m", "input": "Hi", "reasoning": {"summary": "auto"}}, chat(),
                 id="reasoning without effort leaves think unset"),
    pytest.param({"model": "m", "input": "Hi", "text": {"format": {
        "type": "json_schema", "name": "person", "strict": True, "schema": {"type": "object"}}}},
        chat(format={"type": "object"}), id="json_schema format is the schema"),
    pytest.param({"model": "m", "input": "Hi", "text": {"format": {"type": "json_object"}}},
                 chat(format="json"), id="json_object format is json mode"),
    pytest.param({"model": "m", "input": "Hi", "text": {"format": {"type": "text"}, "verbosity": "low"}},
                 chat(), id="text format is the default"),
    pytest.param({"model": "m", "input": "Hi", "top_logprobs": 3,
                  "include": ["message.output_text.logprobs", "reasoning.encrypted_content"]},
                 chat(logprobs=True, top_logprobs=3), id="logprobs asked through include"),
    pytest.param({"model": "m", "input": "Hi", "store": False, "parallel_tool_calls": False,
                  "metadata": {"k": "v"}, "user": "u1", "truncation": "auto", "service_tier": "auto",
                  "prompt_cache_key": "p", "safety_identifier": "s", "max_tool_calls": 2,
                  "stream_options": {"include_obfuscation": False}, "previous_response_id": None,
                  "conversation": None, "background": False, "raw": True, "seed_note": None},
                 chat(raw=True), id="gateway-level fields dropped, unknown fields kept, nulls left out"),
]


@pytest.mark.parametrize(("body", "expected"), REQUEST_CASES)
def test_from_responses_request(body, expected):
    assert from_responses_request(body) == expected


@pytest.mark.parametrize(("effort", "think"), [
    ("none", False), ("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high"),
    ("xhigh", "high"), ("max", "max"),
])
def test_reasoning_effort_maps_to_think(effort, think):
    body = {"model": "m", "input": "Hi", "reasoning": {"effort": effort}}
    assert from_responses_request(body) == chat(think=think)


REFUSED_CASES = [
    pytest.param({"previous_response_id": "resp_0"}, "previous_response_id", "stateless", id="previous_response_id"),
    pytest.param({"store": True}, "store", "does not store responses", id="store true"),
    pytest.param({"conversation": {"id": "conv_1"}}, "conversation", "stateless", id="conversation"),
    pytest.param({"prompt": {"id": "pmpt_1"}}, "prompt", "stored prompts", id="stored prompt"),
    pytest.param({"background": True}, "background", "background", id="background"),
    pytest.param({"tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": []}, WEATHER]},
                 "tools", "tools of type file_search, web_search are not supported", id="hosted tools"),
    pytest.param({"tools": [{"type": "function", "description": "no name"}]}, "tools[0].name", "name",
                 id="function tool without a name"),
    pytest.param({"tools": [WEATHER], "tool_choice": {"type": "file_search"}}, "tool_choice", "tool_choice",
                 id="hosted tool_choice"),
    pytest.param({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice",
                 "not in tools: nope", id="tool_choice names an unknown tool"),
    pytest.param({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
                 "input[0].content[0].file_id", "file_id", id="image by file_id"),
    pytest.param({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a.png"}]}]},
                 "input[0].content[0].image_url", "http", id="image URL of another scheme"),
    pytest.param({"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "..."}]}]},
                 "input[0].content[0]", "input_file", id="file part"),
    pytest.param({"input": [{"type": "item_reference", "id": "msg_0"}]}, "input[0]", "stateless",
                 id="item_reference"),
    pytest.param({"input": [{"type": "web_search_call", "id": "ws_0"}]}, "input[0].type", "web_search_call",
                 id="hosted-tool item"),
    pytest.param({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "role", id="unknown role"),
    pytest.param({"input": [{"role": "user"}]}, "input[0].content", "content", id="message without content"),
    pytest.param({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]},
                 "input[0].arguments", "JSON object", id="arguments not JSON"),
    pytest.param({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
                 "input[0].arguments", "JSON object", id="arguments not an object"),
    pytest.param({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
                 "input[0].name", "name", id="function_call without a name"),
    pytest.param({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "none, minimal", id="unknown effort"),
    pytest.param({"text": {"format": {"type": "grammar"}}}, "text.format.type", "json_schema",
                 id="unknown text format"),
    pytest.param({"model": None}, "model", "model is required", id="no model"),
    pytest.param({"input": 42}, "input", "string or a list", id="input of the wrong type"),
    pytest.param({"input": []}, "input", "input is required", id="empty input"),
    pytest.param({"stream": "yes"}, "stream", "true or false", id="stream not a boolean"),
    pytest.param({"options": [1]}, "options", "object", id="options not an object"),
]


@pytest.mark.parametrize(("fields", "param", "message"), REFUSED_CASES)
def test_from_responses_request_refuses(fields, param, message):
    with pytest.raises(InvalidRequest) as caught:
        from_responses_request({"model": "m", "input": "Hi", **fields})
    assert caught.value.param == param
    assert message in caught.value.message


# --- response --------------------------------------------------------------------------

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


def ollama(message=None, **fields):
    """Return a final Ollama /api/chat response."""
    return {"model": "llama3.2", "created_at": "2025-07-07T20:22:19.184789Z",
            "message": {"role": "assistant", "content": "", **(message or {})},
            "done": True, "done_reason": "stop", **fields}


TOKYO = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
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

RESPONSE_CASES = [
    pytest.param(ollama({"content": "Hello!"}, prompt_eval_count=26, eval_count=3), REQUEST,
                 response([message("msg_1", "Hello!")], usage(26, 3)), id="text"),
    pytest.param(ollama({"content": "Hello!", "thinking": "Greet back."}, prompt_eval_count=26, eval_count=9),
                 REQUEST, response([reasoning("rs_1", "Greet back."), message("msg_1", "Hello!")], usage(26, 9)),
                 id="thinking then text"),
    pytest.param(ollama({"tool_calls": [{"id": "call_abc", **TOKYO},
                                        {"function": {"name": "get_time", "arguments": {}}}]},
                        prompt_eval_count=169, eval_count=18), REQUEST,
                 response([function_call("fc_1", "call_abc", "get_weather", '{"city":"Tokyo"}'),
                           function_call("fc_2", "call_1", "get_time", "{}")], usage(169, 18)),
                 id="tool calls: Ollama's id kept, else a new call id"),
    pytest.param(ollama({"content": "Checking.", "tool_calls": [TOKYO]}), REQUEST,
                 response([message("msg_1", "Checking."),
                           function_call("fc_1", "call_1", "get_weather", '{"city":"Tokyo"}')], usage(0, 0)),
                 id="text and a tool call both kept"),
    pytest.param(ollama({"content": "Once upon"}, done_reason="length", prompt_eval_count=5, eval_count=2),
                 REQUEST, response([message("msg_1", "Once upon", "incomplete")], usage(5, 2), "incomplete"),
                 id="length: incomplete"),
    pytest.param(ollama({"thinking": "Hmm"}, done_reason="length"), REQUEST,
                 response([reasoning("rs_1", "Hmm")], usage(0, 0), "incomplete"),
                 id="length while thinking: reasoning only"),
    pytest.param(ollama(), REQUEST, response([message("msg_1", "")], usage(0, 0)),
                 id="empty completion is an empty message"),
    pytest.param(ollama({"content": "Hi"}, logprobs=LOGPROBS), REQUEST,
                 response([message("msg_1", "Hi", logprobs=OPENAI_LOGPROBS)], usage(0, 0)), id="logprobs"),
    pytest.param(ollama({"content": "{}"}), FULL_REQUEST, response(
        [message("msg_1", "{}")], usage(0, 0), instructions="Be brief.", tools=[WEATHER],
        tool_choice="required", temperature=0.5, top_p=0.9, max_output_tokens=64, parallel_tool_calls=False,
        metadata={"k": "v"}, reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_object"}}, truncation="disabled", user="u1", top_logprobs=2),
        id="request fields echoed"),
]


def _to_response(ollama_resp, request):
    return to_responses_response(ollama_resp, response_id="resp_1", created_at=CREATED, model="gpt-test",
                                 new_id=ids(), request=request)


@pytest.mark.parametrize(("ollama_resp", "request_body", "expected"), RESPONSE_CASES)
def test_to_responses_response(ollama_resp, request_body, expected):
    assert _to_response(ollama_resp, request_body) == expected


@pytest.mark.parametrize(("ollama_resp", "request_body", "expected"), RESPONSE_CASES)
def test_response_matches_sdk_model(ollama_resp, request_body, expected):
    Response.model_validate(_to_response(ollama_resp, request_body))


# --- stream ----------------------------------------------------------------------------

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

def sdk_client(body: bytes, content_type: str) -> OpenAI:
    """Return an OpenAI client whose every request is answered with ``body``."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})
    return OpenAI(api_key="test", base_url="http://gateway.test/v1", max_retries=0,
                  http_client=httpx.Client(transport=httpx.MockTransport(answer)))


def sse(events) -> bytes:
    return "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events).encode()


def test_sdk_create_parses_the_response():
    body = _to_response(ollama({"content": "Hello!", "thinking": "Greet.", "tool_calls": [TOKYO]}), REQUEST)
    with sdk_client(json.dumps(body).encode(), "application/json") as client:
        result = client.responses.create(model="gpt-test", input="Hi")
    assert result.output_text == "Hello!"
    assert [item.type for item in result.output] == ["reasoning", "message", "function_call"]
    assert result.output[2].arguments == '{"city":"Tokyo"}'


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
