"""The OpenAI API through the real server, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests

from tests.e2e.conftest import GENERATE, base_config

HELLO = [{"role": "user", "content": "hello"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKm"
                       "MIQAAAABJRU5ErkJggg==")


@pytest.fixture
def client(proxy):
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        yield client


def test_models_list_and_retrieve(client, fake):
    assert [m.id for m in client.models.list()] == list(fake.models)
    model = client.models.retrieve("llama3.2")
    assert (model.id, model.object, model.owned_by) == ("llama3.2:latest", "model", "library")
    assert model.created > 1_600_000_000
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"


def test_empty_model_list_is_an_empty_array(client, fake):
    fake.models.clear()
    assert requests.get(client.base_url.join("models").__str__(),
                        headers={"Authorization": f"Bearer {GENERATE}"}).json() == {"object": "list", "data": []}


def test_chat_non_stream(client, fake):
    answer = client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert answer.id.startswith("chatcmpl-") and answer.object == "chat.completion"
    assert answer.model == "llama3.2"
    assert answer.choices[0].message.content == "You said: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (1, 3)
    sent = fake.last("/api/chat").json
    assert sent["stream"] is True  # asked as a stream and folded: a leaving client can close it
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    assert "options" not in sent  # no invented defaults (Ollama's own layer forces temperature 1.0)


def test_chat_stream_with_usage(client, fake):
    fake.script("llama3.2:latest", reply="one two three")
    chunks = list(client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert len({c.id for c in chunks}) == 1


def test_sse_frames_leave_as_each_upstream_chunk_arrives(client, fake):
    import time

    fake.script("llama3.2:latest", reply="a b c d", chunk_delay=0.2)
    started = time.monotonic()
    arrivals = [time.monotonic() - started
                for c in client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
                if c.choices and c.choices[0].delta.content]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    print(f"SSE content arrivals (s): {[round(a, 3) for a in arrivals]}")
    assert len(arrivals) == 4 and all(gap > 0.1 for gap in gaps)


def test_chat_stream_with_the_async_client(proxy, fake):
    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key=GENERATE) as client:
            stream = await client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream])
    assert asyncio.run(run()) == "You said: hello"


def test_tool_call_round_trip(client, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}])
    first = client.chat.completions.create(model="llama3.2", tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "Weather in Tokyo?"}])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Tokyo"})

    fake.script("llama3.2:latest", reply="It is sunny in Tokyo.")
    second = client.chat.completions.create(model="llama3.2", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Tokyo?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}])
    assert second.choices[0].message.content == "It is sunny in Tokyo."
    assistant, tool = fake.last("/api/chat").json["messages"][1:]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Tokyo"}}
    assert tool == {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": call.id,
                    "tool_name": "get_weather"}


@pytest.mark.parametrize("in_done", [False, True])
def test_parallel_tool_calls_stream_with_distinct_indexes(client, fake, in_done):
    fake.script("llama3.2:latest", reply="", tool_calls_in_done=in_done, tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    chunks = list(client.chat.completions.create(model="llama3.2", tools=[WEATHER_TOOL], messages=HELLO,
                                                 stream=True))
    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or []]
    assert [c.index for c in calls] == [0, 1]
    assert len({c.id for c in calls}) == 2
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Tokyo", "Paris"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("asked", [
    pytest.param({"reasoning_effort": "high"}, id="reasoning_effort"),
    pytest.param({"extra_body": {"reasoning": {"effort": "medium"}}}, id="reasoning.effort"),
])
def test_reasoning_is_left_out_for_a_model_that_cannot_think(client, fake, asked):
    answer = client.chat.completions.create(model="llama3.2", messages=HELLO, **asked)
    assert answer.choices[0].message.content == "You said: hello"
    assert "think" not in fake.last("/api/chat").json
    chunks = list(client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True, **asked))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hello"
    assert "think" not in fake.last("/api/chat").json


def test_ollamas_own_think_gets_ollamas_answer(client, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama3.2", messages=HELLO, reasoning_effort="high",
                                       extra_body={"think": True})
    assert caught.value.body["message"] == '"llama3.2" does not support thinking'


def test_reasoning_is_returned_under_both_names_and_can_be_excluded(client, fake):
    fake.script("qwen3:8b", reply="42", thinking="Let me think.")
    answer = client.chat.completions.create(model="qwen3:8b", messages=HELLO, reasoning_effort="high")
    assert fake.last("/api/chat").json["think"] == "high"
    message = answer.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == message.model_extra["reasoning"] == "Let me think."

    chunks = list(client.chat.completions.create(model="qwen3:8b", messages=HELLO, stream=True,
                                                 extra_body={"think": True}))
    thought = "".join(c.choices[0].delta.model_extra.get("reasoning_content", "") for c in chunks)
    assert thought == "Let me think."

    hidden = client.chat.completions.create(model="qwen3:8b", messages=HELLO, reasoning_effort="low",
                                            extra_body={"exclude_reasoning": True})
    assert fake.last("/api/chat").json["think"] == "low"
    assert "reasoning_content" not in (hidden.choices[0].message.model_extra or {})
    assert "exclude_reasoning" not in fake.last("/api/chat").json


def test_logprobs_are_asked_for_and_mapped_back(client, fake):
    fake.script("llama3.2:latest", reply="hi there")
    answer = client.chat.completions.create(model="llama3.2", messages=HELLO, logprobs=True, top_logprobs=2)
    assert fake.last("/api/chat").json["logprobs"] is True and fake.last("/api/chat").json["top_logprobs"] == 2
    content = answer.choices[0].logprobs.content
    assert [t.token for t in content] == ["hi ", "there"]
    assert content[0].logprob == -0.25 and content[0].bytes == list(b"hi ")
    assert [t.token for t in content[0].top_logprobs] == ["hi ", "HI "]
    chunks = list(client.chat.completions.create(model="llama3.2", messages=HELLO, logprobs=True, stream=True))
    streamed = [t.token for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert streamed == ["hi ", "there"]


def test_image_as_data_uri(client, fake):
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    client.chat.completions.create(model="llava", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": data_uri}}]}])
    message = fake.last("/api/chat").json["messages"][0]
    assert message["content"] == "What is this?"
    assert base64.b64decode(message["images"][0]) == PNG


@pytest.fixture
def image_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, kind = (PNG, "image/png") if self.path.endswith(".png") else (b"<html>", "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_url_is_fetched_where_allowed(start_proxy, fake, image_server):
    proxy = start_proxy({**base_config(fake.url), "images": {"allow_private": True}}, workers=1)
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        client.chat.completions.create(model="llava", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_server + "/cat.png"}}]}])
        assert base64.b64decode(fake.last("/api/chat").json["messages"][0]["images"][0]) == PNG
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="llava", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_server + "/page.html"}}]}])
        assert "is not an image" in caught.value.message


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.png", "http://169.254.169.254/latest/meta-data",
                                 "http://10.0.0.1/a.png", "http://[::1]/a.png", "http://localhost/a.png"])
def test_image_url_to_a_private_address_is_refused(client, fake, url):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llava", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert "private or local address" in caught.value.message
    assert fake.requests == []


def test_client_giving_up_on_a_whole_answer_stops_the_generation(proxy, fake):
    import time

    fake.script("llama3.2:latest", reply="a b c d", stall_after=1, stall_seconds=20)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(proxy.url + "/v1/chat/completions", timeout=1, headers={"Authorization": f"Bearer {GENERATE}"},
                      json={"model": "llama3.2", "messages": HELLO})
    left = time.monotonic()
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None, timeout=5)
    assert fake.streams[-1].aborted and fake.streams[-1].closed_at - left < 1.0


def test_json_schema_becomes_the_ollama_format(client, fake):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    client.chat.completions.create(model="llama3.2", messages=HELLO, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    assert fake.last("/api/chat").json["format"] == schema
    client.chat.completions.create(model="llama3.2", messages=HELLO, response_format={"type": "json_object"})
    assert fake.last("/api/chat").json["format"] == "json"


def test_n_choices_are_generated_side_by_side(client, fake):
    fake.script("llama3.2:latest", reply="a b", chunk_delay=0.2)
    answer = client.chat.completions.create(model="llama3.2", messages=HELLO, n=2)
    assert [c.index for c in answer.choices] == [0, 1]
    assert [c.message.content for c in answer.choices] == ["a b", "a b"]
    assert answer.usage.completion_tokens == 4
    first, second = [r for r in fake.requests if r.path == "/api/chat"]
    assert abs(first.at - second.at) < 0.2, "the two generations ran one after the other"


def test_sampling_fields_and_ollama_extras_reach_ollama(client, fake):
    client.chat.completions.create(model="llama3.2", messages=HELLO, temperature=0.2, top_p=0.9, seed=7,
                                   stop=["END"], max_tokens=64, frequency_penalty=0.5, presence_penalty=0.1,
                                   extra_body={"keep_alive": "10m", "num_ctx": 8192, "custom_field": {"a": 1},
                                               "options": {"mirostat": 2}})
    sent = fake.last("/api/chat").json
    assert sent["options"] == {"temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"], "num_predict": 64,
                               "frequency_penalty": 0.5, "presence_penalty": 0.1, "num_ctx": 8192, "mirostat": 2}
    assert sent["keep_alive"] == "10m" and sent["custom_field"] == {"a": 1}


def test_completions(client, fake):
    fake.script("llama3.2:latest", reply="four")
    answer = client.completions.create(model="llama3.2", prompt="2+2=", max_tokens=5, suffix=" done")
    assert answer.object == "text_completion" and answer.choices[0].text == "four"
    sent = fake.last("/api/generate").json
    assert (sent["prompt"], sent["suffix"], sent["options"]["num_predict"]) == ("2+2=", " done", 5)
    streamed = list(client.completions.create(model="llama3.2", prompt="2+2=", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "four"


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_embeddings_match_the_upstream_vectors_value_by_value(client, fake, encoding):
    texts = ["first text", "second text"]
    expected = requests.post(fake.url + "/api/embed", json={"model": "all-minilm", "input": texts}).json()
    kwargs = {"encoding_format": encoding} if encoding else {}  # None: the SDK's own default (base64)
    answer = client.embeddings.create(model="all-minilm", input=texts, **kwargs)
    assert [d.index for d in answer.data] == [0, 1]
    vectors = [d.embedding for d in answer.data]
    if encoding == "base64":  # asked for explicitly, the SDK hands the string over as it came
        vectors = [list(struct.unpack(f"<{len(base64.b64decode(v)) // 4}f", base64.b64decode(v))) for v in vectors]
    for got, want in zip(vectors, expected["embeddings"], strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    assert answer.usage.prompt_tokens == expected["prompt_eval_count"]
    if encoding != "float":
        assert fake.last("/api/embed").json == {"model": "all-minilm", "input": texts}


def test_unknown_model_is_404_model_not_found(client, fake):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert caught.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("kwargs, param", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "f", "arguments": "{not json"}}]}]}, "messages[0].tool_calls[0].function.arguments"),
    ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"messages": HELLO, "response_format": {"type": "yaml"}}, "response_format.type"),
])
def test_malformed_requests_are_400_with_the_param(client, fake, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama3.2", **kwargs)
    assert caught.value.param == param
    assert caught.value.body["type"] == "invalid_request_error"
    assert fake.requests == []


def test_bad_key_is_401_authentication_error(proxy):
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.models.list()
    assert caught.value.body["type"] == "authentication_error"


@pytest.mark.parametrize("status, error_class, kind", [
    (429, openai.RateLimitError, "rate_limit_error"),
    (500, openai.InternalServerError, "api_error"),
    (503, openai.InternalServerError, "api_error"),
])
def test_upstream_errors_keep_their_status_in_openai_shape(client, fake, status, error_class, kind):
    fake.script("llama3.2:latest", status=status, error="server busy")
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert caught.value.status_code == status
    assert caught.value.body == {"message": "server busy", "type": kind, "param": None, "code": None}


def test_unreachable_upstream_is_502(start_proxy):
    from tests.e2e.server import free_port

    proxy = start_proxy(base_config(f"http://127.0.0.1:{free_port()}"), workers=1)
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert caught.value.status_code == 502 and "connection refused" in caught.value.message


def test_error_mid_stream_becomes_an_error_event(client, fake):
    fake.script("llama3.2:latest", reply="a b c d", error_after=2, error_message="model crashed")
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True):
            seen.append(chunk.choices[0].delta.content)
    assert "model crashed" in str(caught.value)
    assert seen == ["", "a ", "b "]


def test_unknown_path_and_method_are_openai_errors(proxy):
    headers = {"Authorization": f"Bearer {GENERATE}"}
    missing = requests.post(proxy.url + "/v1/nothing", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    wrong = requests.get(proxy.url + "/v1/chat/completions", headers=headers)
    assert wrong.status_code == 405 and "use POST" in wrong.json()["error"]["message"]
