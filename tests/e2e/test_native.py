"""The native Ollama API through the real server, driven by the official ollama client."""

from __future__ import annotations

import hashlib
import json
import time

import ollama
import pytest
import requests

from tests.e2e.bare_socket import post_json
from tests.e2e.conftest import ALICE, GENERATE, MANAGE, auth

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def client(proxy):
    with ollama.Client(host=proxy.url, headers=auth(GENERATE)) as client:
        yield client


@pytest.fixture
def manager(proxy):
    with ollama.Client(host=proxy.url, headers=auth(MANAGE)) as client:
        yield client


def test_root_and_version_answer_as_ollama_does(proxy, fake):
    root = requests.get(proxy.url + "/", headers=auth())
    assert (root.status_code, root.text) == (200, "Ollama is running")
    head = requests.head(proxy.url + "/", headers=auth())
    assert head.status_code == 200 and head.content == b""
    version = requests.get(proxy.url + "/api/version", headers=auth())
    assert version.json() == {"version": fake.version}


def test_root_answers_without_a_token_as_ollama_does(proxy, fake):
    root = requests.get(proxy.url + "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    head = requests.head(proxy.url + "/")
    assert head.status_code == 200 and head.content == b""
    for path in ("/api/version", "/api/tags"):  # every other endpoint still wants a token
        assert requests.get(proxy.url + path).status_code == 401


def test_think_asked_of_a_model_that_cannot_think_gets_ollamas_answer(client, fake):
    for call in (lambda: client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], think=True),
                 lambda: client.generate(model="llama3.2", prompt="hi", think="high")):
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert (caught.value.status_code, caught.value.error) == (400, '"llama3.2" does not support thinking')
    assert fake.last("/api/generate").json["think"] == "high"
    assert fake.calls("/api/show") == []  # asked as written: no capability look-up


def test_listings(client, fake):
    names = [m.model for m in client.list().models]
    assert names == list(fake.models)
    client.generate(model="qwen3:8b", prompt="hi")
    assert [m.model for m in client.ps().models] == ["qwen3:8b"]


def test_show(client):
    shown = client.show("qwen3:8b")
    assert "thinking" in shown.capabilities
    assert shown.details.family


def test_chat_stream_with_the_ollama_client(client, fake):
    fake.script("llama3.2:latest", reply="The sky is blue because of Rayleigh scattering.")
    parts = list(client.chat(model="llama3.2", messages=[{"role": "user", "content": "why?"}], stream=True))
    assert "".join(p.message.content for p in parts) == "The sky is blue because of Rayleigh scattering."
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == len(parts) - 1 and parts[-1].prompt_eval_count > 0


def test_chat_non_stream_thinking_and_tools(client, fake):
    call = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    fake.script("qwen3:8b", reply="Let me check.", thinking="The user wants weather.", tool_calls=[call])
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    answer = client.chat(model="qwen3:8b", messages=[{"role": "user", "content": "weather in Tokyo?"}],
                         tools=tools, think=True)
    assert answer.message.thinking == "The user wants weather."
    assert answer.message.tool_calls[0].function.name == "get_weather"
    assert answer.message.tool_calls[0].function.arguments == {"city": "Tokyo"}


def test_generate_stream_and_non_stream(client, fake):
    fake.script("llama3.2:latest", reply="one two three")
    streamed = list(client.generate(model="llama3.2", prompt="count", stream=True))
    assert "".join(p.response for p in streamed) == "one two three"
    whole = client.generate(model="llama3.2", prompt="count", images=[b"\x89PNG fake image bytes"])
    assert whole.response == "one two three" and whole.done
    assert fake.last("/api/generate").json["images"]


def test_embed_and_legacy_embeddings(client, fake):
    embedded = client.embed(model="all-minilm", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and embedded.embeddings[0] != embedded.embeddings[1]
    legacy = client.embeddings(model="all-minilm", prompt="a")
    assert legacy.embedding == pytest.approx(embedded.embeddings[0])


def test_model_management_with_a_manage_token(manager, fake):
    progress = list(manager.pull("tinyllama", stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(p.completed for p in progress)
    assert manager.copy("tinyllama", "tinyllama-backup").status == "success"
    assert "tinyllama-backup:latest" in fake.models
    assert manager.delete("tinyllama-backup").status == "success"
    assert "tinyllama-backup:latest" not in fake.models
    created = list(manager.create(model="mario", from_="llama3.2", system="You are Mario.", stream=True))
    assert created[-1].status == "success" and "mario:latest" in fake.models
    assert manager.push("mario", stream=False).status == "success"


def test_blob_upload_is_streamed_through(manager, fake, tmp_path):
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: larger than the JSON body limit
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    digest = manager.create_blob(path)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert fake.blobs[digest] == len(data)
    assert requests.head(f"{manager._client.base_url}/api/blobs/{digest}", headers=auth(MANAGE)).status_code == 200


def test_blob_upload_with_a_wrong_digest_keeps_ollamas_answer(proxy):
    wrong = "sha256:" + "0" * 64
    answer = requests.post(f"{proxy.url}/api/blobs/{wrong}", data=b"abc", headers=auth(MANAGE))
    assert answer.status_code == 400 and "error" in answer.json()


def test_blob_upload_over_its_limit_is_refused(proxy, fake):
    too_big = b"x" * (8 * 1024 * 1024 + 1)
    answer = requests.post(f"{proxy.url}/api/blobs/sha256:{'1' * 64}", data=too_big, headers=auth(MANAGE))
    assert answer.status_code == 413 and "limit" in answer.json()["error"]


def test_streaming_arrives_chunk_by_chunk(proxy, fake):
    """Each chunk reaches the client when the fake sends it, not when the stream ends."""
    delay, count = 0.2, 6
    fake.script("llama3.2:latest", reply=" ".join(["word"] * count), chunk_delay=delay)
    started = time.monotonic()
    arrivals = []
    with requests.post(proxy.url + "/api/chat", headers=auth(), stream=True,
                       json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}) as answer:
        assert answer.headers["Content-Type"] == "application/x-ndjson"
        assert answer.headers["X-Accel-Buffering"] == "no"
        for line in answer.iter_lines():
            arrivals.append(time.monotonic() - started)
            json.loads(line)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    print(f"arrivals (s): {[round(a, 3) for a in arrivals]}; gaps: {[round(g, 3) for g in gaps]}")
    assert len(arrivals) == count + 1
    assert arrivals[0] < delay * 2, "the first chunk waited for later ones"
    assert all(gap > delay * 0.5 for gap in gaps[:count - 1]), "chunks were buffered together"


def test_unknown_fields_and_exact_bytes_reach_ollama(proxy, fake):
    body = (b'{"model":"llama3.2","messages":[{"role":"user","content":"hi","future_field":[1,2]}],'
            b'"stream":false,"brand_new":{"nested":1.0},"options":{"num_ctx":8192,"new_option":true}}')
    answer = requests.post(proxy.url + "/api/chat", data=body, headers={**auth(), "Content-Type": "application/json"})
    assert answer.status_code == 200
    received = fake.last("/api/chat")
    assert received.body == body


def test_headers_sent_upstream(proxy, fake):
    requests.post(proxy.url + "/api/show", json={"model": "llama3.2"},
                  headers={**auth(), "Origin": "http://chat.example.lan", "Cookie": "a=b", "X-Custom": "kept"})
    headers = fake.last("/api/show").headers
    assert "authorization" not in headers and "origin" not in headers and "cookie" not in headers
    assert headers["host"] == fake.url.removeprefix("http://")
    assert headers["x-custom"] == "kept"


@pytest.mark.parametrize("headers", [
    {"Authorization": GENERATE}, {"Authorization": f"Bearer {GENERATE}"}, {"x-api-key": ALICE},
])
def test_each_token_form_is_accepted(proxy, fake, headers):
    assert requests.get(proxy.url + "/api/tags", headers=headers).status_code == 200


@pytest.mark.parametrize("headers, status, message", [
    ({}, 401, "missing token"),
    ({"Authorization": "Bearer nope"}, 401, "invalid token"),
    ({"x-api-key": GENERATE + "x"}, 401, "invalid token"),
])
def test_bad_credentials_are_refused_in_ollamas_shape(proxy, fake, headers, status, message):
    answer = requests.post(proxy.url + "/api/chat", json={"model": "llama3.2"}, headers=headers)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert fake.requests == []


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/pull", {"model": "x"}), ("POST", "/api/push", {"model": "x"}),
    ("POST", "/api/create", {"model": "x", "from": "llama3.2"}),
    ("POST", "/api/copy", {"source": "a", "destination": "b"}),
    ("DELETE", "/api/delete", {"model": "x"}), ("POST", f"/api/blobs/sha256:{'a' * 64}", None),
])
def test_generate_token_may_not_manage(proxy, fake, method, path, body):
    answer = requests.request(method, proxy.url + path, json=body, headers=auth(GENERATE))
    assert answer.status_code == 403
    assert "needs a manage token" in answer.json()["error"]
    assert fake.requests == []


def test_health_and_preflight_need_no_token(proxy, fake):
    health = requests.get(proxy.url + "/health")
    assert health.status_code == 200
    # "degraded" while a failure another test sent this shared fake is in its cooldown
    assert health.json()["status"] in ("ok", "degraded")
    preflight = requests.options(proxy.url + "/api/chat", headers={
        "Origin": "http://chat.example.lan", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://chat.example.lan"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_cors_headers_only_for_allowed_origins(proxy, fake):
    allowed = requests.get(proxy.url + "/api/tags", headers={**auth(), "Origin": "http://chat.example.lan"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://chat.example.lan"
    other = requests.get(proxy.url + "/api/tags", headers={**auth(), "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("data, message", [
    (b"{not json", "not valid JSON"),
    (b"[1]", "must be a JSON object"),
    (b"", "empty"),
    (b'{"model": "llama3.2", "stream": "yes"}', "stream: must be a boolean"),
    (b'{"model": "llama3.2", "messages": [{"role": "user", "content": 7}]}', "messages[0].content"),
    (b'{"messages": []}', "model is required"),
])
def test_malformed_bodies_get_a_clear_400(proxy, fake, data, message):
    answer = requests.post(proxy.url + "/api/chat", data=data, headers=auth())
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert message in answer.json()["error"]
    assert fake.requests == []


def test_oversized_body_is_413(proxy, fake):
    huge = {"model": "llama3.2", "prompt": "x" * (1024 * 1024 + 10)}
    answer = requests.post(proxy.url + "/api/generate", json=huge, headers=auth())
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]
    assert fake.requests == []


def test_unknown_path_and_wrong_method_are_json(proxy):
    missing = requests.get(proxy.url + "/api/nothing", headers=auth())
    assert missing.status_code == 404 and missing.json() == {"error": "no such endpoint: GET /api/nothing"}
    wrong = requests.get(proxy.url + "/api/chat", headers=auth())
    assert wrong.status_code == 405 and "use POST" in wrong.json()["error"]
    assert "POST" in wrong.headers["Allow"]


def test_upstream_errors_keep_status_and_message(client, fake):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "no-such-model" not found, try pulling it first'
    fake.script("llama3.2:latest", status=500, error="CUDA error: out of memory")
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="llama3.2", prompt="hi")
    assert (caught.value.status_code, caught.value.error) == (500, "CUDA error: out of memory")


def test_error_line_from_ollama_mid_stream_passes_through(proxy, fake):
    fake.script("llama3.2:latest", reply="a b c d e f", error_after=2, error_message="model crashed")
    with requests.post(proxy.url + "/api/generate", json={"model": "llama3.2", "prompt": "x"},
                       headers=auth(), stream=True) as answer:
        lines = [json.loads(line) for line in answer.iter_lines()]
    assert answer.status_code == 200
    assert lines[-1] == {"error": "model crashed"} and len(lines) == 3


def test_upstream_dropping_mid_stream_ends_with_an_error_line(proxy, fake):
    fake.script("llama3.2:latest", reply="a b c d e f", drop_after=2)
    with requests.post(proxy.url + "/api/chat", json={"model": "llama3.2", "messages": HELLO},
                       headers=auth(), stream=True) as answer:
        lines = [json.loads(line) for line in answer.iter_lines()]
    assert [line["message"]["content"] for line in lines[:2]] == ["a ", "b "]
    assert "lost mid-answer" in lines[-1]["error"]


def test_upstream_slow_beyond_read_timeout_is_504(start_proxy, fake):
    from tests.e2e.conftest import base_config

    proxy = start_proxy(base_config(fake.url, read_timeout=1), workers=1)
    fake.script("llama3.2:latest", first_byte_delay=3)
    started = time.monotonic()
    answer = requests.post(proxy.url + "/api/generate", json={"model": "llama3.2", "prompt": "x"}, headers=auth())
    assert answer.status_code == 504
    assert "did not answer within 1s" in answer.json()["error"]
    assert time.monotonic() - started < 2.5
    # Let the fake finish the abandoned request, so it does not land in the next test.
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None, timeout=10)


def test_upstream_refused_is_502_and_health_says_so(start_proxy):
    from tests.e2e.conftest import base_config
    from tests.e2e.server import free_port

    proxy = start_proxy(base_config(f"http://127.0.0.1:{free_port()}"), workers=1)
    answer = requests.get(proxy.url + "/api/tags", headers=auth())
    assert answer.status_code == 502
    assert "connection refused" in answer.json()["error"]
    health = requests.get(proxy.url + "/health", headers=auth())
    assert health.status_code == 503 and health.json()["upstreams"][0]["ok"] is False


def test_a_lone_servers_model_count_is_not_known_rather_than_zero(proxy, fake):
    health = requests.get(proxy.url + "/health", headers=auth()).json()
    assert [u["models"] for u in health["upstreams"]] == [None]  # its models are not read: not 0


def test_client_leaving_mid_stream_closes_the_upstream(proxy, fake):
    fake.script("llama3.2:latest", reply=" ".join(["tok"] * 400), chunk_delay=0.05)
    sock = post_json(proxy, "/api/chat", {"model": "llama3.2", "messages": HELLO})
    received = b""
    while received.count(b'"done":false') < 3:
        received += sock.recv(65536)
    sock.close()
    left = time.monotonic()
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None, timeout=5)
    stream = fake.streams[-1]
    print(f"upstream closed {stream.closed_at - left:.3f}s after the client left, "
          f"after {stream.chunks_sent} of 401 chunks")
    assert stream.aborted and not stream.completed
    assert stream.closed_at - left < 1.0


def test_client_leaving_while_ollama_is_silent_closes_the_upstream(proxy, fake):
    fake.script("llama3.2:latest", reply="a b c d", stall_after=2, stall_seconds=20)
    sock = post_json(proxy, "/api/chat", {"model": "llama3.2", "messages": HELLO})
    received = b""
    while received.count(b'"done":false') < 2:
        received += sock.recv(65536)
    time.sleep(0.3)  # Ollama is silent now: no write will tell the proxy the client left
    sock.close()
    left = time.monotonic()
    fake.wait_for(lambda: fake.streams[-1].closed_at is not None, timeout=5)
    print(f"silent upstream closed {fake.streams[-1].closed_at - left:.3f}s after the client left")
    assert fake.streams[-1].aborted
    assert fake.streams[-1].closed_at - left < 1.0


def test_access_log_names_the_token_never_the_secret(proxy, fake):
    answer = requests.post(proxy.url + "/api/chat", headers={"x-api-key": ALICE},
                           json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    request_id = answer.headers["X-Request-Id"]
    deadline = time.monotonic() + 5
    while not any(request_id in line for line in proxy.access_lines()) and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = next(json.loads(line) for line in proxy.access_lines() if request_id in line)
    assert entry["token"] == "alice" and entry["model"] == "llama3.2"
    assert entry["status"] == 200 and entry["bytes"] == len(answer.content) and entry["aborted"] is False
    assert entry["method"] == "POST" and entry["path"] == "/api/chat"


def test_200_concurrent_streams_all_complete_intact(proxy, fake):
    from concurrent.futures import ThreadPoolExecutor

    fake.script("llama3.2:latest", reply=" ".join(f"w{i}" for i in range(20)), chunk_delay=0.02)
    expected = " ".join(f"w{i}" for i in range(20))

    def one_stream(n: int) -> str:
        with ollama.Client(host=proxy.url, headers=auth()) as client:
            parts = list(client.chat(model="llama3.2", messages=[{"role": "user", "content": str(n)}], stream=True))
        assert parts[-1].done
        return "".join(p.message.content for p in parts)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one_stream, range(200)))
    print(f"200 streams of 21 chunks in {time.monotonic() - started:.2f}s")
    assert results == [expected] * 200
    assert sum(1 for s in fake.streams if s.completed) == 200


def test_no_secret_is_ever_logged(proxy, fake):
    from tests.e2e.conftest import SECRETS

    for secret in SECRETS:
        for headers in ({"Authorization": secret}, {"Authorization": f"Bearer {secret}"}, {"x-api-key": secret}):
            requests.get(proxy.url + "/api/tags", headers=headers)
            requests.post(proxy.url + "/api/pull", json={"model": "x"}, headers=headers)
            requests.post(proxy.url + "/api/chat", data=b"{bad", headers=headers)
        requests.get(proxy.url + "/api/tags", headers={"Authorization": f"Bearer {secret}-wrong"})
    time.sleep(0.5)  # access lines are written as each response closes
    texts = [p.read_text() for p in proxy.log_dir.iterdir()] + [proxy.stderr()]
    assert len(proxy.access_lines()) >= 30
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def _timing(answer) -> dict[str, float]:
    parts = dict(part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(","))
    return {name: float(value) for name, value in parts.items()}


def test_server_timing_splits_proxy_queue_and_upstream_time(proxy, fake):
    fake.script("llama3.2:latest", first_byte_delay=0.3)
    whole = requests.post(proxy.url + "/api/generate", headers=auth(),
                          json={"model": "llama3.2", "prompt": "x", "stream": False})
    streamed = requests.post(proxy.url + "/v1/chat/completions", headers=auth(),
                             json={"model": "llama3.2", "messages": HELLO, "stream": True})
    for answer in (whole, streamed):
        timing = _timing(answer)
        assert timing["upstream"] >= 300, timing
        assert 0 <= timing["proxy"] < 300, timing
    assert set(_timing(requests.get(proxy.url + "/api/nothing", headers=auth()))) == {"proxy", "queue", "upstream"}
