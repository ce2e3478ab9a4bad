"""The OpenAI Responses API through the real server, driven by the official openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.conftest import GENERATE

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def client(proxy):
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        yield client


def test_create_text(client, fake):
    response = client.responses.create(model="llama3.2", input="hello", instructions="Be brief.",
                                       max_output_tokens=32)
    assert response.id.startswith("resp_") and response.status == "completed" and response.model == "llama3.2"
    assert response.output_text == "You said: hello"
    assert response.usage.output_tokens == 3
    sent = fake.last("/api/chat").json
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert sent["options"] == {"num_predict": 32}


def test_stream_text(client, fake):
    fake.script("llama3.2:latest", reply="one two three")
    with client.responses.stream(model="llama3.2", input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "one two three" and final.output_text == "one two three"


def test_event_order(client, fake):
    fake.script("llama3.2:latest", reply="hi")
    kinds = [e.type for e in client.responses.create(model="llama3.2", input="x", stream=True)]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]


def test_function_call_round_trip(client, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}])
    first = client.responses.create(model="llama3.2", input="Weather in Rome?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Rome"}
    assert call.call_id

    fake.script("llama3.2:latest", reply="Rome is sunny.")
    second = client.responses.create(model="llama3.2", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Rome?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "Rome is sunny."
    messages = fake.last("/api/chat").json["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Rome"}}
    assert messages[2]["role"] == "tool" and messages[2]["tool_name"] == "get_weather"


def test_streamed_function_call(client, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}])
    with client.responses.stream(model="llama3.2", input="Weather?", tools=[WEATHER]) as stream:
        done = [e for e in stream if e.type == "response.function_call_arguments.done"]
        final = stream.get_final_response()
    assert json.loads(done[0].arguments) == {"city": "Rome"}
    assert final.output[-1].type == "function_call"


def test_reasoning_is_left_out_for_a_model_that_cannot_think(client, fake):
    response = client.responses.create(model="llama3.2", input="hello", reasoning={"effort": "high"})
    assert response.output_text == "You said: hello"
    assert "think" not in fake.last("/api/chat").json
    with client.responses.stream(model="llama3.2", input="hello", reasoning={"effort": "low"}) as stream:
        assert stream.get_final_response().output_text == "You said: hello"
    assert "think" not in fake.last("/api/chat").json


def test_reasoning(client, fake):
    fake.script("qwen3:8b", reply="42", thinking="Let me think.")
    response = client.responses.create(model="qwen3:8b", input="?", reasoning={"effort": "medium"})
    assert fake.last("/api/chat").json["think"] == "medium"
    reasoning = next(item for item in response.output if item.type == "reasoning")
    assert reasoning.summary[0].text == "Let me think." and response.output_text == "42"


def test_stored_state_is_refused_clearly(client, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="llama3.2", input="x", previous_response_id="resp_123")
    assert caught.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="llama3.2", input="x", store=True)
    assert fake.requests == []


# --- what Codex sends: namespaces of functions, hosted tools, items Ollama has no use for ----------

AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
    {"type": "function", "name": "close_agent", "description": "Close an agent", "strict": False,
     "parameters": {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}}]}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}
CLOSE = {"function": {"name": "multi_agent_v1.close_agent", "arguments": {"target": "a1"}}}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_namespaced_function_round_trip(client, fake, stream):
    fake.script("llama3.2:latest", reply="", tool_calls=[CLOSE])
    if stream:
        with client.responses.stream(model="llama3.2", input="Close a1.", tools=[AGENTS, WEATHER]) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model="llama3.2", input="Close a1.", tools=[AGENTS, WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.name, call.namespace) == ("close_agent", "multi_agent_v1")
    assert json.loads(call.arguments) == {"target": "a1"}
    offered = [tool["function"]["name"] for tool in fake.last("/api/chat").json["tools"]]
    assert offered == ["multi_agent_v1.close_agent", "get_weather"]

    fake.script("llama3.2:latest", reply="Closed.")
    second = client.responses.create(model="llama3.2", tools=[AGENTS, WEATHER], input=[
        {"role": "user", "content": "Close a1."},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "namespace": call.namespace,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "closed"}])
    assert second.output_text == "Closed."
    messages = fake.last("/api/chat").json["messages"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "multi_agent_v1.close_agent"
    assert messages[2] == {"role": "tool", "content": "closed", "tool_name": "multi_agent_v1.close_agent",
                           "tool_call_id": call.call_id}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_hosted_tool_is_left_out_and_the_answer_says_so(proxy, client, fake, stream):
    raw = client.responses.with_raw_response.create(
        model="llama3.2", input="hello", stream=stream,
        tools=[WEATHER, WEB_SEARCH, {"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert raw.headers["X-Ollama-Proxy-Dropped-Tools"] == "web_search, file_search"
    parsed = raw.parse()
    if stream:
        assert [event.type for event in parsed][-1] == "response.completed"
    assert [tool["function"]["name"] for tool in fake.last("/api/chat").json["tools"]] == ["get_weather"]
    request_id = raw.headers["X-Request-Id"]
    assert proxy.access_entry(request_id)["status"] == 200
    log = (proxy.log_dir / "error.log").read_text()
    assert f"(request {request_id}): left out tools Ollama cannot run: web_search, file_search" in log


def test_no_header_when_nothing_is_left_out(client, fake):
    raw = client.responses.with_raw_response.create(model="llama3.2", input="hello", tools=[WEATHER])
    assert "X-Ollama-Proxy-Dropped-Tools" not in raw.headers


@pytest.mark.parametrize("tool_choice", [{"type": "web_search"}, "required"], ids=["named", "required"])
def test_a_forced_hosted_tool_is_refused(client, fake, tool_choice):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="llama3.2", input="Search.", tools=[WEB_SEARCH], tool_choice=tool_choice)
    error = caught.value.body
    assert caught.value.param == "tool_choice" and error["type"] == "invalid_request_error"
    assert "forces web_search, which Ollama cannot run" in error["message"]
    assert fake.requests == []


def test_input_items_ollama_has_no_use_for_are_dropped(client, fake):
    response = client.responses.create(model="llama3.2", tools=[AGENTS], input=[
        {"type": "additional_tools", "role": "developer", "tools": [WEATHER]},
        {"role": "user", "content": "Weather in Rome?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call", "call_id": "call_2", "name": "close_agent", "namespace": "multi_agent_v1",
         "arguments": '{"target":"a1"}'},
        {"type": "custom_tool_call", "call_id": "call_3", "name": "exec", "input": "1 + 1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "custom_tool_call_output", "call_id": "call_3", "output": "2"},
        {"type": "function_call_output", "call_id": "call_2", "output": "closed"},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAB-summary"},
        {"type": "a_type_not_known_yet", "id": "x_1"},
    ])
    assert response.status == "completed"
    sent = fake.last("/api/chat").json
    assert [message["role"] for message in sent["messages"]] == ["user", "assistant", "tool", "tool"]
    assert [call["id"] for call in sent["messages"][1]["tool_calls"]] == ["call_1", "call_2"]
    assert [(m["tool_call_id"], m["content"]) for m in sent["messages"][2:]] == [("call_1", "sunny"),
                                                                                 ("call_2", "closed")]
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["multi_agent_v1.close_agent", "get_weather"]
