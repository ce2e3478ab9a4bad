"""Table tests for the OpenAI Responses API request -> Ollama /api/chat translation."""

from __future__ import annotations

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.responses.request import from_responses_request
from tests.unit.translate.responses.helpers import WEATHER

PNG = "iVBORw0KGgo="
OLLAMA_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "name": "get_time"}
OLLAMA_TIME = {"type": "function", "function": {"name": "get_time"}}
HI = [{"role": "user", "content": "Hi"}]


def chat(messages=None, **fields):
    """Return the Ollama body expected for a request to model ``m``."""
    return {"model": "m", "messages": HI if messages is None else messages, "stream": False, **fields}


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

# What Codex sends: a namespace of functions, a hosted web_search, its session ids, and history
# items that only OpenAI's own state can use.
AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
          "tools": [{"type": "function", "name": "close_agent", "strict": False}]}
OLLAMA_CLOSE = {"type": "function", "function": {"name": "multi_agent_v1.close_agent"}}
CODEX_FIELDS = {"tool_choice": "auto", "parallel_tool_calls": True, "reasoning": {"summary": "auto"},
                "store": False, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "019a",
                "client_metadata": {"session_id": "019a", "x-codex-turn-metadata": "{}"}}

CODEX_CASES = [
    pytest.param({"model": "m", "input": "Hi", "tools": [TIME, AGENTS, {"type": "web_search",
                                                                        "external_web_access": False}],
                  **CODEX_FIELDS},
                 chat(tools=[OLLAMA_TIME, OLLAMA_CLOSE]),
                 id="namespace expanded, web_search left out, session fields dropped"),
    pytest.param({"model": "m", "tools": [AGENTS], "input": [
        *HI,
        {"type": "reasoning", "id": "rs_0", "summary": [], "encrypted_content": "gAAAAB-opaque"},
        {"type": "function_call", "call_id": "call_1", "name": "close_agent", "namespace": "multi_agent_v1",
         "arguments": '{"target":"a"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "closed"},
        {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
    ]}, chat([*HI, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"name": "multi_agent_v1.close_agent", "arguments": {"target": "a"}}},
        {"id": "call_2", "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "content": "closed", "tool_name": "multi_agent_v1.close_agent", "tool_call_id": "call_1"},
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_2"}],
        tools=[OLLAMA_CLOSE]),
        id="a namespaced call is qualified again; parallel calls and outputs stay paired; encrypted reasoning dropped"),
    pytest.param({"model": "m", "input": [
        {"type": "additional_tools", "id": "at_0", "role": "developer", "tools": [AGENTS]},
        *HI,
        {"type": "web_search_call", "id": "ws_0", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "custom_tool_call", "call_id": "call_c", "name": "exec", "input": "1 + 1"},
        {"type": "custom_tool_call_output", "call_id": "call_c", "output": "2"},
        {"type": "local_shell_call", "call_id": "call_l", "status": "completed",
         "action": {"type": "exec", "command": ["ls"]}},
        {"type": "local_shell_call_output", "call_id": "call_l", "output": "a.txt"},
        {"type": "compaction", "id": "cmp_0", "encrypted_content": "gAAAAB-summary"},
        {"type": "mcp_approval_request", "id": "mcpr_0", "server_label": "x", "name": "f", "arguments": "{}"},
        {"type": "a_type_not_known_yet", "id": "x_0"},
        {"role": "user", "content": "Go on"},
    ]}, chat([*HI, {"role": "user", "content": "Go on"}], tools=[OLLAMA_CLOSE]),
        id="additional_tools join tools; items Ollama has no use for dropped, each call with its output"),
    pytest.param({"model": "m", "input": [
        *HI,
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call_output", "call_id": "call_1", "output": "noon"},
    ]}, chat([*HI, {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_1"}]),
        id="text replayed between a call and its output joins the call's turn"),
    pytest.param({"model": "m", "input": "Hi", "tools": [TIME, AGENTS],
                  "tool_choice": {"type": "function", "name": "close_agent", "namespace": "multi_agent_v1"}},
                 chat(tools=[OLLAMA_CLOSE]), id="tool_choice names a namespaced function"),
]


@pytest.mark.parametrize(("body", "expected"), REQUEST_CASES + CODEX_CASES)
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
    pytest.param({"tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": []}, WEATHER],
                  "tool_choice": {"type": "web_search"}},
                 "tool_choice", "tool_choice forces web_search, which Ollama cannot run", id="hosted tool forced"),
    pytest.param({"tools": [{"type": "web_search"}], "tool_choice": "required"},
                 "tool_choice", "forces web_search", id="required with hosted tools only"),
    pytest.param({"tools": [{"type": "web_search"}, WEATHER], "tool_choice": {
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]}},
        "tool_choice", "forces web_search", id="allowed_tools requiring hosted tools only"),
    pytest.param({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}]},
                 "tools[0].tools[0].name", "name", id="namespace function without a name"),
    pytest.param({"tools": [{"type": "namespace", "name": "ns", "tools": "x"}]},
                 "tools[0].tools", "list of objects", id="namespace tools not a list"),
    pytest.param({"input": [{"type": "additional_tools", "tools": [{"type": "function"}]}, *HI]},
                 "input[0].tools[0].name", "name", id="additional_tools function without a name"),
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
    pytest.param({"input": [{"content": "no role, no type"}]}, "input[0].type", "type", id="item without a type"),
    pytest.param({"input": [{"type": "web_search_call", "id": "ws_0"}]}, "input", "input is required",
                 id="nothing left once unknown items are dropped"),
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
