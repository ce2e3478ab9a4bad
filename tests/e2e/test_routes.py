"""Ollama's newer routes through the real server: status, recommendations, the account, web search and fetch,
any route Ollama adds later, and audio transcriptions, each under its token's rules."""

from __future__ import annotations

import json
import uuid

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.command import cli, create_key
from tests.e2e.conftest import GENERATE, MANAGE, MAX_BODY, SCRAPE, auth, base_config
from tests.e2e.server import ProxyServer, wait_for

TIMEOUT = 10
SEARCHER = "searcher-token-0123456789"  # a shared token allowed the web
CACHE_SECONDS = 0.3
SEARCH = "/api/experimental/web_search"
FETCH = "/api/experimental/web_fetch"
TRANSCRIBE = "/v1/audio/transcriptions"
AUDIO = bytes(range(256)) * 64  # 16 KiB of "audio", every byte value in it


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["auth"]["generate_tokens"].append({"name": "searcher", "token": SEARCHER, "web": True})
    config["auth"]["key_cache_seconds"] = CACHE_SECONDS
    config["usage"] = {"flush_interval": 0.1}
    config["models"] = {"aliases": {"whisper-1": "llama3.2:latest"}}
    started = ProxyServer(config, tmp_path_factory.mktemp("routes")).start()
    yield started
    started.stop()


def call(server: ProxyServer, method: str, path: str, token: str = GENERATE, **options) -> requests.Response:
    """Send a request with a fresh X-Request-Id (in ``answer.request_id``)."""
    request_id = uuid.uuid4().hex
    headers = {**auth(token), "X-Request-Id": request_id, **options.pop("headers", {})}
    answer = requests.request(method, server.url + path, headers=headers, timeout=TIMEOUT, **options)
    answer.request_id = request_id
    return answer


def scrape(server: ProxyServer, name: str, **labels) -> float:
    text = requests.get(server.url + "/metrics", headers=auth(SCRAPE), timeout=TIMEOUT).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and set(labels.items()) <= set(s.labels.items()))


def error_log(server: ProxyServer) -> str:
    path = server.log_dir / "error.log"
    return path.read_text() if path.exists() else ""


def usage_row(server: ProxyServer, request_id: str) -> dict:
    rows: list[dict] = []

    def written() -> bool:
        store = server.open_store()
        try:
            rows[:] = [r for r in store.query_usage(limit=None) if r["request_id"] == request_id]
        finally:
            store.close()
        return bool(rows)
    assert wait_for(written), f"no usage row for request {request_id}"
    return rows[0]


# Read-only routes and the account


@pytest.mark.parametrize("path", ["/api/status", "/api/experimental/model-recommendations"])
def test_read_only_routes_answer_a_generate_token_as_ollama_does(server, fake, path):
    answer = call(server, "GET", path)
    assert answer.status_code == 200
    assert answer.json() == requests.get(fake.url + path, timeout=TIMEOUT).json()
    assert "authorization" not in fake.calls(path)[0].headers


@pytest.mark.parametrize("path", ["/api/me", "/api/signout"])
def test_account_routes_need_a_manage_token(server, fake, path):
    answer = call(server, "POST", path)
    assert answer.status_code == 403 and "needs a manage token" in answer.json()["error"]
    assert fake.calls(path) == []


def test_the_account_answers_of_ollama_pass_through_for_a_manage_token(server, fake):
    signed_out = call(server, "POST", "/api/me", MANAGE)
    assert signed_out.status_code == 401 and signed_out.json()["signin_url"].startswith("https://ollama.com/")
    fake.account = {"name": "ann", "email": "ann@example.com"}
    assert call(server, "POST", "/api/me", MANAGE).json() == {"plan": "free", "name": "ann", "email": "ann@example.com"}
    signout = call(server, "POST", "/api/signout", MANAGE)
    assert (signout.status_code, signout.json(), fake.account) == (200, None, None)
    assert call(server, "GET", "/api/me", MANAGE).status_code == 405  # as Ollama: POST only


def test_a_route_ollama_adds_later_goes_to_ollama_as_it_came_for_a_manage_token(server, fake):
    body = b'{"anything": ["the proxy does not know"]}'
    answer = call(server, "PUT", "/api/experimental/next-thing?verbose=1", MANAGE, data=body,
                  headers={"Content-Type": "application/json", "X-Custom": "kept"})
    # The fake has no such route either: Go's plain-text 404 becomes the proxy's own, in JSON.
    assert answer.status_code == 404
    assert answer.json() == {"error": "no such endpoint: PUT /api/experimental/next-thing"}
    arrived = fake.last("/api/experimental/next-thing")
    assert (arrived.method, arrived.query, arrived.body) == ("PUT", "verbose=1", body)
    assert arrived.headers["x-custom"] == "kept" and "authorization" not in arrived.headers
    fake.account = {"name": "ann"}
    assert call(server, "DELETE", "/api/user/keys/ZmFrZQ", MANAGE).status_code == 200  # Ollama's older signout
    assert fake.account is None
    entry = server.access_entry(answer.request_id)
    assert (entry["path"], entry["status"], entry["token"]) == ("/api/experimental/next-thing", 404, "admin")


def test_a_route_ollama_adds_later_is_no_route_to_a_generate_token(server, fake):
    fake.account = {"name": "ann"}
    for method, path in (("POST", "/api/experimental/next-thing"), ("DELETE", "/api/user/keys/ZmFrZQ")):
        answer = call(server, method, path, json={"x": 1})
        assert answer.status_code == 404 and answer.json() == {"error": f"no such endpoint: {method} {path}"}
        assert fake.calls(path) == []
    assert fake.account == {"name": "ann"}


def test_a_route_ollama_has_for_other_methods_is_its_405_in_json(server, fake):
    answer = call(server, "GET", "/api/user/keys/ZmFrZQ", MANAGE)  # Ollama: DELETE only
    assert answer.status_code == 405 and answer.headers["Allow"] == "DELETE"
    assert answer.json() == {"error": "method GET is not allowed on /api/user/keys/ZmFrZQ (use DELETE)"}


def test_a_route_of_the_proxys_own_with_a_converter_asked_with_another_method_is_its_405(server, fake):
    answer = call(server, "PUT", "/api/blobs/sha256:" + "0" * 64, MANAGE)
    assert answer.status_code == 405 and set(answer.headers["Allow"].split(", ")) >= {"HEAD", "POST"}
    assert fake.calls("/api/blobs/sha256:" + "0" * 64) == []


def test_a_route_of_the_proxys_own_asked_with_another_method_is_still_its_405(server, fake):
    answer = call(server, "GET", "/api/chat", MANAGE)
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]
    assert answer.json() == {"error": "method GET is not allowed on /api/chat (use POST)"}
    assert fake.calls("/api/chat") == []


# Web search and fetch


@pytest.mark.parametrize("token, name", [(GENERATE, "generate#0"), (MANAGE, "admin")])
@pytest.mark.parametrize("path, tool", [(SEARCH, "search"), (FETCH, "fetch")])
def test_the_web_is_refused_to_tokens_without_the_permission(server, fake, token, name, path, tool):
    answer = call(server, "POST", path, token, json={"query": "x", "url": "https://example.com"})
    assert answer.status_code == 403
    assert answer.json()["error"].startswith(f"token '{name}' may not use web {tool}:")
    assert fake.web_calls == [] and fake.calls(path) == []


def test_a_token_allowed_the_web_searches_and_each_call_is_logged_counted_and_recorded(server, fake):
    before = scrape(server, "ollama_proxy_requests_total", surface="web", endpoint=SEARCH, status="200")
    body = b'{"query": "what is ollama", "max_results": 3}'
    answer = call(server, "POST", SEARCH, SEARCHER, data=body)
    assert answer.status_code == 200 and len(answer.json()["results"]) == 3
    assert fake.last(SEARCH).body == body and fake.web_calls == [("search", json.loads(body))]
    fetched = call(server, "POST", FETCH, SEARCHER, json={"url": "https://ollama.com"})
    assert fetched.status_code == 200 and fetched.json()["title"] == "Page at https://ollama.com"
    assert server.access_entry(answer.request_id)["token"] == "searcher"
    assert wait_for(lambda: f"web search for 'searcher' on Ollama server 'default': 200 (request {answer.request_id})"
                    in error_log(server))
    assert f"web fetch for 'searcher' on Ollama server 'default': 200 (request {fetched.request_id})" \
        in error_log(server)
    assert " INFO " in next(line for line in error_log(server).splitlines() if answer.request_id in line)
    assert wait_for(lambda: scrape(server, "ollama_proxy_requests_total", surface="web", endpoint=SEARCH,
                                   status="200") == before + 1)
    row = usage_row(server, answer.request_id)
    assert (row["surface"], row["key_name"], row["status"]) == ("web", "searcher", 200)


def test_ollamas_own_refusal_of_a_web_call_passes_through(server, fake):
    answer = call(server, "POST", SEARCH, SEARCHER, data=b"")
    assert answer.status_code == 400 and answer.json() == {"error": "missing request body"}


def test_a_managed_key_uses_the_web_only_when_allowed(server, fake):
    allowed = create_key(server, "--name", "web-agent", "--allow", "web")
    plain = create_key(server, "--name", "chat-agent")
    assert call(server, "POST", SEARCH, allowed, json={"query": "x"}).status_code == 200
    assert call(server, "POST", SEARCH, plain, json={"query": "x"}).status_code == 403
    done = cli(server, "keys", "allow", "chat-agent", "web")
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: call(server, "POST", SEARCH, plain, json={"query": "x"}).status_code == 200)
    assert cli(server, "keys", "deny", "web-agent", "web").returncode == 0
    assert wait_for(lambda: call(server, "POST", SEARCH, allowed, json={"query": "x"}).status_code == 403)


# Audio transcriptions


def form(*parts: tuple[str, bytes, str | None], boundary: str = "b0undary") -> tuple[bytes, str]:
    """Encode (name, value, filename) parts in this order; return the body and its Content-Type."""
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "\r\nContent-Type: audio/wav" if filename else ""
        body += f"--{boundary}\r\nContent-Disposition: {disposition}{kind}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_the_openai_sdk_transcribes_through_the_proxy(server, fake):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        answer = client.audio.transcriptions.create(model="llama3.2", file=("a.wav", AUDIO), language="en")
        text = client.audio.transcriptions.create(model="llama3.2", file=("a.wav", AUDIO), response_format="text")
    assert answer.text == f"heard {len(AUDIO)} bytes of audio" and text.strip() == answer.text
    assert fake.last(TRANSCRIBE).body.count(AUDIO) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["Content-Length", "chunked"])
def test_a_form_goes_on_unchanged_whatever_the_order_of_its_parts(server, fake, chunked):
    body, content_type = form(("file", AUDIO, "a.wav"), ("model", b"llama3.2", None), ("prompt", b"names", None))
    data = iter([body[:1000], body[1000:]]) if chunked else body
    answer = call(server, "POST", TRANSCRIBE, data=data, headers={"Content-Type": content_type})
    assert answer.status_code == 200 and answer.json() == {"text": f"heard {len(AUDIO)} bytes of audio"}
    assert fake.last(TRANSCRIBE).body == body
    entry = server.access_entry(answer.request_id)
    assert (entry["model"], entry["backend"], entry["upstream_model"]) == ("llama3.2", "default", "llama3.2")


def test_an_alias_is_sent_as_the_model_it_names(server, fake):
    body, content_type = form(("model", b"whisper-1", None), ("file", AUDIO, "a.wav"))
    answer = call(server, "POST", TRANSCRIBE, data=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text
    assert fake.last(TRANSCRIBE).body == body.replace(b"whisper-1", b"llama3.2:latest")


def test_a_key_may_transcribe_only_with_its_models(server, fake):
    secret = create_key(server, "--name", "qwen-only", "--models", "qwen3*")
    with openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'llama3.2'"):
            client.audio.transcriptions.create(model="llama3.2", file=("a.wav", AUDIO))
    assert fake.calls(TRANSCRIBE) == []


@pytest.mark.parametrize("parts, status, message", [
    ((("file", AUDIO, "a.wav"),), 400, "model is required"),
    ((("model", b"nope", None), ("file", AUDIO, "a.wav")), 404, 'model "nope" not found'),  # Ollama's own answer
])
def test_errors_come_in_openais_shape(server, fake, parts, status, message):
    body, content_type = form(*parts)
    answer = call(server, "POST", TRANSCRIBE, data=body, headers={"Content-Type": content_type})
    assert answer.status_code == status and message in answer.json()["error"]["message"]


def test_a_body_that_is_no_form_is_a_400(server, fake):
    answer = call(server, "POST", TRANSCRIBE, json={"model": "llama3.2"})
    assert answer.status_code == 400 and "multipart/form-data" in answer.json()["error"]["message"]
    assert fake.calls(TRANSCRIBE) == []


def test_a_form_over_the_body_limit_is_a_413(server, fake):
    body, content_type = form(("model", b"llama3.2", None), ("file", b"x" * (MAX_BODY + 1), "a.wav"))
    answer = call(server, "POST", TRANSCRIBE, data=body, headers={"Content-Type": content_type})
    assert answer.status_code == 413 and answer.json()["error"]["type"]
    assert fake.calls(TRANSCRIBE) == []


def test_a_transcription_has_a_time_to_first_token(server, fake):
    name = "ollama_proxy_time_to_first_token_seconds_count"
    before = scrape(server, name, surface="openai")
    body, content_type = form(("model", b"llama3.2", None), ("file", AUDIO, "a.wav"))
    answer = call(server, "POST", TRANSCRIBE, data=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200
    assert wait_for(lambda: scrape(server, name, surface="openai") == before + 1)
    assert server.access_entry(answer.request_id)["ttft_ms"] > 0


def test_a_chunked_form_over_the_body_limit_is_a_413(server, fake):
    body, content_type = form(("model", b"llama3.2", None), ("file", b"x" * (MAX_BODY + 1), "a.wav"))
    pieces = iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
    answer = call(server, "POST", TRANSCRIBE, data=pieces, headers={"Content-Type": content_type})
    assert answer.status_code == 413 and answer.json()["error"]["type"]
    assert "Traceback" not in error_log(server) + server.stderr()
