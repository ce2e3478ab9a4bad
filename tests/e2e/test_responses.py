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
