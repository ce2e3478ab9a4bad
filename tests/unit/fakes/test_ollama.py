"""Tests of the fake Ollama server that the gateway's end-to-end tests run against."""

import hashlib
import json
import logging
import math
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.ollama import FakeOllama

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def chat_body(content="hello there", **fields):
    """Return a /api/chat request for llama3.2 with one user message."""
    return {"model": "llama3.2", "messages": [{"role": "user", "content": content}], **fields}


def post(fake, path, body, **options):
    """POST body as JSON to the fake."""
    return requests.post(fake.url + path, json=body, timeout=10, **options)


def stream(fake, path, body):
    """POST body and return the NDJSON objects the fake streams back."""
    with post(fake, path, body, stream=True) as response:
        return [json.loads(line) for line in response.iter_lines()]


def test_streamed_chunks_arrive_one_by_one(fake):
    fake.script("llama3.2", reply="one two three four", chunk_delay=0.3)
    chunks, sent_when_read = [], []
    with post(fake, "/api/chat", chat_body(), stream=True) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        assert response.headers["Transfer-Encoding"] == "chunked"
        for line in response.iter_lines():
            sent_when_read.append(fake.streams[-1].chunks_sent)
            chunks.append(json.loads(line))
    assert "".join(chunk["message"]["content"] for chunk in chunks) == "one two three four"
    assert len(chunks) == 5
    # The first chunk is read while the fake still sleeps before the second: nothing is buffered.
    assert sent_when_read[0] < len(chunks)


def test_final_object_has_done_reason_and_metrics(fake):
    *partial, done = stream(fake, "/api/chat", chat_body("why is the sky blue?"))
    assert all(chunk["done"] is False and RFC3339.fullmatch(chunk["created_at"]) for chunk in partial)
    assert done["done"] is True and done["done_reason"] == "stop"
    assert done["message"] == {"role": "assistant", "content": ""}
    assert done["prompt_eval_count"] == 5
    assert done["eval_count"] == len(partial) == 7  # "You said: why is the sky blue?"
    durations = [done[key] for key in ("load_duration", "prompt_eval_duration", "eval_duration")]
    assert all(type(value) is int and value > 0 for value in durations)
    assert done["total_duration"] == sum(durations)


def test_a_model_may_count_its_prompt_as_a_tokenizer_would(fake):
    fake.script("llama3.2", prompt_tokens="template")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "why is the sky blue?"}]
    *_, done = stream(fake, "/api/chat", {"model": "llama3.2", "messages": messages})
    # <|im_start|>system\nBe brief.<|im_end|> is 14 pieces, the question's turn 17, the assistant's opening 6
    assert done["prompt_eval_count"] == 14 + 17 + 6
    *_, with_tools = stream(fake, "/api/chat", {"model": "llama3.2", "messages": messages, "tools": [WEATHER_TOOL]})
    assert with_tools["prompt_eval_count"] == 37 + len(re.findall(r"\w+|[^\w\s]", json.dumps(WEATHER_TOOL)))


def test_stream_false_answers_one_json_object(fake):
    response = post(fake, "/api/chat", chat_body(stream=False))
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert answer["message"] == {"role": "assistant", "content": "You said: hello there"}
    assert answer["done"] is True and answer["eval_count"] == 4


def test_thinking_model_thinks_by_default_when_generating(fake):
    fake.script("qwen3:8b", thinking="Hmm, a greeting.", reply="Hello!")
    answer = post(fake, "/api/generate", {"model": "qwen3:8b", "prompt": "hi", "stream": False}).json()
    assert (answer["thinking"], answer["response"], answer["eval_count"]) == ("Hmm, a greeting.", "Hello!", 4)
    quiet = post(fake, "/api/generate", {"model": "qwen3:8b", "prompt": "hi", "stream": False, "think": False})
    assert "thinking" not in quiet.json()


def test_thinking_streams_first_and_tool_calls_come_before_done(fake):
    call = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    fake.script("qwen3:8b", thinking="Check the weather.", reply="", tool_calls=[call])
    chunks = stream(fake, "/api/chat", chat_body(model="qwen3:8b", think="high", tools=[WEATHER_TOOL]))
    messages = [chunk["message"] for chunk in chunks]
    assert [message.get("thinking") for message in messages[:3]] == ["Check ", "the ", "weather."]
    assert messages[3] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert chunks[4]["done"] is True and len(chunks) == 5
    without_tools = stream(fake, "/api/chat", chat_body(model="qwen3:8b"))
    assert not any("tool_calls" in chunk["message"] for chunk in without_tools)


def test_a_tool_result_gets_the_scripted_answer_without_tool_calls(fake):
    call = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    fake.script("llama3.2", reply="", tool_calls=[call], reply_to_tool_result="Sunny in Oslo.")
    asked = post(fake, "/api/chat", chat_body(tools=[WEATHER_TOOL], stream=False)).json()["message"]
    assert asked["tool_calls"] == [call]
    result = {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    history = [{"role": "user", "content": "weather?"}, asked, result]
    answered = post(fake, "/api/chat", {"model": "llama3.2", "messages": history, "tools": [WEATHER_TOOL],
                                        "stream": False}).json()["message"]
    assert answered == {"role": "assistant", "content": "Sunny in Oslo."}


def test_an_agent_turn_calls_tools_then_replies_to_their_result(fake):
    call = {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    fake.script("llama3.2", reply="Sunny.", tool_calls=[call], reply_after_tools=True)
    first = post(fake, "/api/chat", chat_body(tools=[WEATHER_TOOL], stream=False)).json()["message"]
    answered = chat_body(tools=[WEATHER_TOOL], stream=False)
    answered["messages"] += [{"role": "assistant", "content": "", "tool_calls": [call]},
                             {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}]
    second = post(fake, "/api/chat", answered).json()["message"]
    assert first == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert second == {"role": "assistant", "content": "Sunny."}


def test_the_scripted_answer_to_a_tool_result_is_keyed_on_the_last_message(fake):
    call = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    fake.script("llama3.2", reply="", tool_calls=[call], reply_to_tool_result="Sunny in Tokyo.")
    first = post(fake, "/api/chat", chat_body("weather?", tools=[WEATHER_TOOL], stream=False)).json()
    assert first["message"]["tool_calls"] == [call]
    answered = [{"role": "user", "content": "weather?"}, first["message"],
                {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]
    second = post(fake, "/api/chat", {"model": "llama3.2", "messages": answered, "tools": [WEATHER_TOOL],
                                      "stream": False}).json()
    assert second["message"] == {"role": "assistant", "content": "Sunny in Tokyo."}
    again = post(fake, "/api/chat", {"model": "llama3.2", "messages": [*answered, {"role": "user", "content": "and?"}],
                                     "tools": [WEATHER_TOOL], "stream": False}).json()
    assert again["message"]["tool_calls"] == [call]  # keyed on the last message, not on the history


def test_models_refuse_what_they_cannot_do(fake):
    thinking = post(fake, "/api/chat", chat_body(think=True))
    embedding_chat = post(fake, "/api/chat", chat_body(model="all-minilm"))
    vision_tools = post(fake, "/api/chat", chat_body(model="llava", tools=[WEATHER_TOOL]))
    assert (thinking.status_code, thinking.json()) == (400, {"error": '"llama3.2" does not support thinking'})
    assert embedding_chat.json() == {"error": '"all-minilm" does not support chat'}
    assert vision_tools.json() == {"error": "registry.ollama.ai/library/llava:latest does not support tools"}


@pytest.mark.parametrize(("think", "status"), [
    (True, 400), ("high", 400), ("low", 400), (False, 200), (None, 200)])
def test_only_a_think_that_turns_thinking_on_is_refused_as_ollama_reads_it(fake, think, status):
    assert post(fake, "/api/generate", {"model": "llama3.2", "prompt": "hi", "think": think,
                                        "stream": False}).status_code == status


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ('{"model": "nope", "messages": []}', 404, 'model "nope" not found, try pulling it first'),
        ('{"messages": []}', 400, "model is required"),
        ('{"model": ', 400, "unexpected EOF"),
        ("{nope}", 400, "invalid character 'n'"),
    ],
)
def test_bad_requests_get_ollamas_errors_and_are_recorded(fake, payload, status, error):
    response = requests.post(fake.url + "/api/chat", data=payload, timeout=10)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert fake.last("/api/chat").body == payload.encode()


@pytest.mark.parametrize(("body", "error"), [
    ({"model": "m", "files": {"m.gguf": None}}, "invalid digest format"),  # Go reads null as ""
    ({"model": "m", "files": {"m.gguf": 7}}, "json: cannot unmarshal number into Go struct field"),
    ({"model": "m", "files": ["sha256:" + "0" * 64]}, "json: cannot unmarshal array into Go struct field"),
    ({"model": "m", "from": ["llama3.2"]}, "json: cannot unmarshal array into Go struct field"),
])
def test_create_refuses_files_and_from_of_the_wrong_type_as_go_decodes_them(fake, body, error):
    response = post(fake, "/api/create", body)
    assert response.status_code == 400 and response.json()["error"].startswith(error)


def test_scripted_status_answers_at_once(fake):
    fake.script("llama3.2", status=503, error="server busy")
    response = post(fake, "/api/chat", chat_body())
    assert (response.status_code, response.json()) == (503, {"error": "server busy"})


def test_unknown_path_and_wrong_method_answer_like_go(fake):
    missing = requests.get(fake.url + "/api/nothing", timeout=10)
    wrong = requests.get(fake.url + "/api/chat", timeout=10)
    assert (missing.status_code, missing.text, missing.headers["Content-Type"]) == (
        404,
        "404 page not found",
        "text/plain",
    )
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_foreign_origin_or_host_gets_an_empty_403(fake):
    foreign = requests.get(fake.url + "/api/tags", headers={"Origin": "https://evil.example"}, timeout=10)
    local = requests.get(fake.url + "/api/tags", headers={"Origin": "http://localhost:3000"}, timeout=10)
    other_host = requests.get(fake.url + "/api/tags", headers={"Host": "gateway.example"}, timeout=10)
    assert (foreign.status_code, foreign.content) == (403, b"")
    assert local.status_code == 200
    assert other_host.status_code == 403
    assert fake.requests[0].headers["origin"] == "https://evil.example"


def test_blob_upload_checks_the_digest(fake):
    data = b"GGUF" * 100_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = f"{fake.url}/api/blobs/{digest}"
    assert requests.head(blob, timeout=10).status_code == 404
    wrong = requests.post(f"{fake.url}/api/blobs/sha256:{'0' * 64}", data=data, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("digest mismatch")
    assert requests.post(blob, data=data, timeout=10).status_code == 201
    assert requests.head(blob, timeout=10).status_code == 200
    assert fake.blobs == {digest: len(data)}
    assert fake.last(f"/api/blobs/{digest}").body == b""


def test_pull_reports_growing_progress_then_installs_the_model(fake):
    statuses = stream(fake, "/api/pull", {"model": "mistral"})
    assert statuses[0] == {"status": "pulling manifest"}
    assert statuses[-1] == {"status": "success"}
    progress = [status for status in statuses if "completed" in status]
    for digest in {status["digest"] for status in progress}:
        layer = [status for status in progress if status["digest"] == digest]
        completed = [status["completed"] for status in layer]
        assert completed == sorted(completed) and completed[-1] == layer[-1]["total"]
    tags = requests.get(fake.url + "/api/tags", timeout=10).json()
    assert "mistral:latest" in [model["name"] for model in tags["models"]]


def test_model_management_reads_the_deprecated_name_as_ollama_does(fake):
    assert stream(fake, "/api/pull", {"name": "mistral"})[-1] == {"status": "success"}
    assert stream(fake, "/api/push", {"name": "mistral"})[-1] == {"status": "success"}
    assert post(fake, "/api/show", {"name": "mistral"}).json()["details"]["family"]
    assert requests.delete(fake.url + "/api/delete", json={"name": "mistral"}, timeout=10).status_code == 200
    assert "mistral:latest" not in fake.models
    assert post(fake, "/api/chat", {"name": "llama3.2", "messages": []}).json() == {"error": "model is required"}


def test_empty_prompt_loads_and_keep_alive_zero_unloads(fake):
    def generate(**fields):
        return post(fake, "/api/generate", {"model": "llama3.2", **fields}).json()

    def running():
        return [model["name"] for model in requests.get(fake.url + "/api/ps", timeout=10).json()["models"]]

    assert generate()["done_reason"] == "load"
    assert running() == ["llama3.2:latest"]
    assert generate(keep_alive=0)["done_reason"] == "unload"
    assert running() == []


def test_error_mid_stream_is_a_line_of_a_200_stream(fake):
    fake.script("llama3.2", error_after=2, error_message="model crashed")
    with post(fake, "/api/chat", chat_body(), stream=True) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    assert response.status_code == 200
    assert len(lines) == 3 and lines[-1] == {"error": "model crashed"}


def test_client_going_away_is_recorded_and_stops_the_stream(fake):
    fake.script("llama3.2", reply="word " * 100, chunk_delay=0.02)
    with post(fake, "/api/chat", chat_body(), stream=True) as response:
        lines = response.iter_lines()
        next(lines), next(lines)
    record = fake.streams[0]
    fake.wait_for(lambda: record.aborted)
    sent = record.chunks_sent
    time.sleep(0.1)
    assert record.chunks_sent == sent < 100
    assert not record.completed and record.closed_at is not None


def test_drop_after_cuts_the_connection_quietly(fake, capfd, caplog):
    fake.script("llama3.2", drop_after=2)
    with post(fake, "/api/chat", chat_body(), stream=True) as response:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(response.iter_lines())
    record = fake.streams[0]
    fake.wait_for(lambda: record.closed_at is not None)
    assert (record.chunks_sent, record.completed, record.aborted) == (2, False, False)
    assert "Traceback" not in capfd.readouterr().err
    assert not [entry for entry in caplog.records if entry.levelno >= logging.ERROR]


def test_embeddings_are_deterministic_unit_vectors(fake):
    def embed(**fields):
        return post(fake, "/api/embed", {"model": "all-minilm", **fields}).json()

    both = embed(input=["sky", "grass"])
    sky = embed(input="sky")["embeddings"][0]
    assert both["embeddings"][0] == sky != both["embeddings"][1]
    assert len(sky) == 8 and all(round(value, 6) == value for value in sky)
    assert math.isclose(math.fsum(value * value for value in sky), 1, abs_tol=1e-4)
    assert len(embed(input="sky", dimensions=3)["embeddings"][0]) == 3
    assert both["prompt_eval_count"] == 2


def test_holds_200_concurrent_streams(fake):
    # Each stream waits after its first chunk until all 200 are open, so how fast the threads
    # start does not decide the outcome: a fake that cannot hold 200 fails the last check.
    fake.script("llama3.2", reply="a b c", chunk_delay=0.1, hold_until_open=200, hold_seconds=8)

    def finished(_):
        return stream(fake, "/api/chat", chat_body())[-1]["done"]

    with ThreadPoolExecutor(max_workers=200) as pool:
        assert all(pool.map(finished, range(200)))
    assert len(fake.streams) == 200
    assert max(record.started for record in fake.streams) < min(record.closed_at for record in fake.streams)


@pytest.mark.parametrize("body, model", [
    (b'{"model": "llama3.2", "Model": "qwen3:8b", "prompt": "hi", "stream": false}', "qwen3:8b"),
    (b'{"MODEL": "qwen3:8b", "model": "llama3.2", "prompt": "hi", "stream": false}', "llama3.2"),
    (b'{"\\u004dodel": "qwen3:8b", "prompt": "hi", "stream": false}', "qwen3:8b"),
])
def test_body_keys_name_fields_in_any_case_and_the_last_wins_as_in_go(fake, body, model):
    answer = requests.post(fake.url + "/api/generate", data=body, timeout=5)
    assert answer.status_code == 200 and answer.json()["model"] == model
    assert fake.last("/api/generate").json["model"] == model


def test_keys_with_the_kelvin_sign_and_long_s_name_fields_as_in_go(fake):
    body = {"model": "llama3.2", "prompt": "hi", "stream": False, "\u212aeep_alive": 0, "option\u017f": {"seed": 1}}
    requests.post(fake.url + "/api/generate", json=body, timeout=5)
    ran = fake.last("/api/generate").json
    assert ran["keep_alive"] == 0 and ran["options"] == {"seed": 1}


def test_a_whole_answer_stops_when_its_client_leaves_and_frees_its_slot():
    """As Ollama's request context is cancelled the moment the client goes, for stream false too."""
    with FakeOllama(num_parallel=1) as fake:
        fake.script("llama3.2", reply=" ".join(["w"] * 50), chunk_delay=0.05)  # 2.5 s of answer
        host, port = fake.url.removeprefix("http://").split(":")
        body = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False})
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST /api/chat HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            fake.wait_for(lambda: fake.scheduler.records() and fake.scheduler.records()[0].started_at)
            left = time.monotonic()
        fake.wait_for(lambda: fake.scheduler.records()[0].state != "running", timeout=1.0)
        record = fake.scheduler.records()[0]
        assert record.state == "cancelled" and (record.finished_at or record.left_at) - left < 0.5
