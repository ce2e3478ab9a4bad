"""Several Ollama servers behind one proxy: routing by model, failover, limits, listings, health."""

from __future__ import annotations

import socket
import threading
import time

import anthropic
import ollama
import openai
import pytest
import requests

from tests.e2e.conftest import AT_ONCE, GENERATE, MANAGE, auth, base_config
from tests.e2e.server import ProxyServer, free_port, wait_for
from tests.fakes.ollama import FakeOllama

COOLDOWN = 1.5
SLOT_WAIT = 0.5
REFRESH = 0.2


@pytest.fixture(scope="module")
def fakes():
    servers = [FakeOllama().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def routed(fakes, tmp_path_factory):
    """One worker, so its view of how busy each server is decides every choice."""
    default, gpu2, gpu3 = fakes
    # Routing among servers the proxy does not schedule: least busy, failover, lock-file slots.
    config = base_config(default.url, health_cache_seconds=0, scheduling=False)  # each /health sees them as now
    config["backends"] = [
        {"name": "gpu2", "type": "ollama", "base_url": gpu2.url, "scheduling": False},
        {"name": "gpu3", "type": "ollama", "base_url": gpu3.url, "max_concurrent": 1, "scheduling": False},
    ]
    config["routing"] = {"refresh_interval": REFRESH, "refresh_timeout": 1, "cooldown": COOLDOWN,
                         "slot_wait": SLOT_WAIT}
    server = ProxyServer(config, tmp_path_factory.mktemp("routed"), workers=1).start()
    yield server
    server.stop()


@pytest.fixture
def servers(fakes, routed):
    """Reset the fakes: default lists llama3.2 and qwen3, gpu2 llama3.2 and phi4, gpu3 mistral."""
    default, gpu2, gpu3 = fakes
    for fake in fakes:
        fake.reset()
    default.set_models("llama3.2", "qwen3:8b")
    gpu2.set_models("llama3.2", "phi4")
    gpu3.set_models("mistral")
    time.sleep(COOLDOWN + 2 * REFRESH)  # earlier tests' cool-downs over, the new lists read
    return fakes


@pytest.fixture
def client(routed):
    with ollama.Client(host=routed.url, headers=auth()) as client:
        yield client


def _chat_requests(fake: FakeOllama) -> int:
    return sum(1 for r in fake.requests if r.path == "/api/chat")


def test_a_model_on_one_server_only_routes_there(routed, servers, client):
    default, gpu2, gpu3 = servers
    reply = client.chat(model="phi4", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "You said: hi"
    assert _chat_requests(gpu2) == 1 and _chat_requests(default) == _chat_requests(gpu3) == 0
    client.generate(model="mistral", prompt="x")
    assert gpu3.last("/api/generate").json["model"] == "mistral"


def test_a_model_no_server_lists_goes_to_the_default_and_keeps_its_404(routed, servers, client):
    default = servers[0]
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nowhere", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert default.last("/api/chat").json["model"] == "nowhere"


def _read_by_the_proxy(fake: FakeOllama) -> None:
    """Wait until the proxy has read what ``fake`` runs now (its /api/ps), however busy the machine is."""
    listed = len(fake.calls("/api/ps"))
    # Two more listings asked for: the proxy has read the answer to one asked after the change.
    assert wait_for(lambda: len(fake.calls("/api/ps")) >= listed + 2, timeout=10)


def test_the_server_with_the_model_loaded_is_preferred(routed, servers, client):
    default, gpu2, _ = servers
    gpu2.loaded = {"llama3.2:latest"}
    _read_by_the_proxy(gpu2)
    for _ in range(3):
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert (_chat_requests(gpu2), _chat_requests(default)) == (3, 0)


def test_the_least_busy_server_is_chosen(routed, servers, client):
    default, gpu2, _ = servers
    for fake in (default, gpu2):
        fake.script("llama3.2", chunk_delay=0.3)
        # Loaded on both from the start: a listing read between the two requests must not make the
        # busy server the only one with the model loaded, which the proxy prefers over a less busy one.
        fake.loaded = {"llama3.2:latest"}
        _read_by_the_proxy(fake)
    busy = requests.post(routed.url + "/api/chat", headers=auth(), stream=True,
                         json={"model": "llama3.2", "messages": [{"role": "user", "content": "a b c"}]})
    first = default if _chat_requests(default) else gpu2
    other = gpu2 if first is default else default
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    busy.close()
    assert _chat_requests(other) == 1 and _chat_requests(first) == 1


def test_a_refusing_server_is_skipped_cooled_down_and_used_again(routed, servers, client):
    default, gpu2, _ = servers
    gpu2.loaded = {"llama3.2:latest"}
    _read_by_the_proxy(gpu2)
    port = int(gpu2.url.rsplit(":", 1)[1])
    gpu2.stop()
    try:
        started = time.perf_counter()
        reply = client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
        failover = time.perf_counter() - started
        assert reply.message.content == "You said: hi" and _chat_requests(default) == 1
        assert failover < 1.0, f"failing over took {failover:.3f}s"
    finally:
        gpu2.start(port)
    gpu2.loaded = {"llama3.2:latest"}
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "again"}])
    assert _chat_requests(default) == 2 and _chat_requests(gpu2) == 0  # still cooling down
    health = requests.get(routed.url + "/health", headers=auth()).json()
    gpu2_health = next(u for u in health["upstreams"] if u["name"] == "gpu2")
    assert gpu2_health["state"] == "cooling down" and "cannot reach" in gpu2_health["last_error"]
    assert all(isinstance(u["models"], int) for u in health["upstreams"]), health  # two servers: read
    default.loaded = set()  # its answers loaded the model: make gpu2 the better choice again
    time.sleep(COOLDOWN)
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "back"}])
    assert _chat_requests(gpu2) == 1


def test_a_server_answering_5xx_is_skipped_then_used_again(routed, servers, client):
    default, gpu2, _ = servers
    gpu2.loaded = {"llama3.2:latest"}
    gpu2.script("llama3.2", status=500, error="model runner crashed")
    _read_by_the_proxy(gpu2)
    stream = client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(part.message.content for part in stream) == "You said: hi"
    assert (_chat_requests(gpu2), _chat_requests(default)) == (1, 1)
    gpu2.script("llama3.2")
    default.loaded = set()
    time.sleep(COOLDOWN)
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert _chat_requests(gpu2) == 2


def test_an_answer_about_the_request_takes_no_server_out_of_rotation(routed, servers, client):
    """Ollama 0.33 answers 501 to an embedding asked of a chat model: the request's fault, not the server's."""
    default, gpu2, _ = servers
    gpu2.loaded = {"llama3.2:latest"}
    gpu2.script("llama3.2", status=501, error='"llama3.2" does not support embeddings')
    _read_by_the_proxy(gpu2)
    refused = requests.post(routed.url + "/api/embed", headers=auth(), timeout=10,
                            json={"model": "llama3.2", "input": "hello"})
    assert (refused.status_code, refused.json()) == (501, {"error": '"llama3.2" does not support embeddings'})
    assert sum(1 for r in default.requests if r.path == "/api/embed") == 0  # not tried again elsewhere
    gpu2.script("llama3.2")
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert (_chat_requests(gpu2), _chat_requests(default)) == (1, 0)  # still the preferred server, not cooling
    health = requests.get(routed.url + "/health", headers=auth(), timeout=10).json()
    assert all(u["state"] != "cooling down" for u in health["upstreams"]), health


def _hold_gpu3(routed, gpu3) -> requests.Response:
    gpu3.script("mistral", chunk_delay=0.5)
    held = requests.post(routed.url + "/api/chat", headers=auth(), stream=True,
                         json={"model": "mistral", "messages": [{"role": "user", "content": "a b c d e f"}]})
    assert held.status_code == 200
    return held


def test_max_concurrent_waits_then_answers_503_in_each_surface(routed, servers):
    gpu3 = servers[2]
    held = _hold_gpu3(routed, gpu3)
    try:
        started = time.perf_counter()
        native = requests.post(routed.url + "/api/generate", headers=auth(), json={"model": "mistral", "prompt": "x"})
        waited = time.perf_counter() - started
        assert native.status_code == 503 and "routing.slot_wait" in native.json()["error"]
        assert native.headers["Retry-After"] == "1"
        assert SLOT_WAIT <= waited < SLOT_WAIT + 1.5
        with openai.OpenAI(base_url=routed.url + "/v1", api_key=GENERATE, max_retries=0) as oa_client, \
                pytest.raises(openai.InternalServerError) as oa_error:
            oa_client.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "x"}])
        assert oa_error.value.status_code == 503 and oa_error.value.body["type"] == "api_error"
        with anthropic.Anthropic(base_url=routed.url, api_key=GENERATE, max_retries=0) as an_client, \
                pytest.raises(anthropic.InternalServerError) as an_error:
            an_client.messages.create(model="mistral", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert an_error.value.status_code == 503 and an_error.value.body["error"]["type"] == "overloaded_error"
    finally:
        held.close()


def test_a_waiting_request_gets_the_slot_when_it_frees(routed, servers):
    gpu3 = servers[2]
    gpu3.script("mistral", chunk_delay=0.05)
    held = requests.post(routed.url + "/api/chat", headers=auth(), stream=True,
                         json={"model": "mistral", "messages": [{"role": "user", "content": "a b c d"}]})
    threading.Timer(0.1, held.close).start()
    answer = requests.post(routed.url + "/api/generate", headers=auth(), json={"model": "mistral", "prompt": "x",
                                                                                "stream": False})
    assert answer.status_code == 200


def test_listings_merge_every_server_without_duplicates(routed, servers, client):
    default, gpu2, gpu3 = servers
    gpu3.loaded = {"mistral:latest"}
    names = [m.model for m in client.list().models]
    assert sorted(names) == ["llama3.2:latest", "mistral:latest", "phi4:latest", "qwen3:8b"]
    assert [m.model for m in client.ps().models] == ["mistral:latest"]
    with openai.OpenAI(base_url=routed.url + "/v1", api_key=GENERATE) as oa_client:
        ids = sorted(m.id for m in oa_client.models.list())
    assert ids == ["llama3.2:latest", "mistral:latest", "phi4:latest", "qwen3:8b"]


def test_listings_leave_out_a_server_that_is_down(routed, servers, client):
    gpu2 = servers[1]
    port = int(gpu2.url.rsplit(":", 1)[1])
    gpu2.stop()
    try:
        names = sorted(m.model for m in client.list().models)
        health = requests.get(routed.url + "/health", headers=auth())
    finally:
        gpu2.start(port)
    assert names == ["llama3.2:latest", "mistral:latest", "qwen3:8b"]
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    states = {u["name"]: u["state"] for u in health.json()["upstreams"]}
    assert states == {"default": "ok", "gpu2": "down", "gpu3": "ok"}


def test_health_lists_every_backend(routed, servers):
    health = requests.get(routed.url + "/health", headers=auth())
    assert health.status_code == 200 and health.json()["status"] == "ok"
    upstreams = {u["name"]: u for u in health.json()["upstreams"]}
    assert list(upstreams) == ["default", "gpu2", "gpu3"]
    assert {name: u["models"] for name, u in upstreams.items()} == {"default": 2, "gpu2": 2, "gpu3": 1}
    assert all(u["state"] == "ok" and u["type"] == "ollama" for u in upstreams.values())


def test_health_is_503_when_no_ollama_server_answers(start_proxy):
    config = base_config(f"http://127.0.0.1:{free_port()}")
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": f"http://127.0.0.1:{free_port()}", **AT_ONCE}]
    proxy = start_proxy(config, workers=1)
    health = requests.get(proxy.url + "/health", headers=auth())
    assert health.status_code == 503
    assert [u["state"] for u in health.json()["upstreams"]] == ["down", "down"]


def test_a_server_that_never_answers_is_left_out_of_listings_within_the_refresh_timeout(start_proxy, fake):
    hung = socket.create_server(("127.0.0.1", 0))  # connections land in its backlog; nothing ever answers
    config = base_config(fake.url, health_timeout=0.5)  # service.read_timeout stays 30 s
    config["backends"] = [{"name": "gpu2", "type": "ollama",
                           "base_url": f"http://127.0.0.1:{hung.getsockname()[1]}", **AT_ONCE}]
    config["routing"] = {"refresh_timeout": 1}
    with hung:
        proxy = start_proxy(config, workers=1)
        started = time.monotonic()
        tags = requests.get(proxy.url + "/api/tags", headers=auth(), timeout=30)
        took = time.monotonic() - started
        models = requests.get(proxy.url + "/v1/models", headers=auth(), timeout=30)
        health = requests.get(proxy.url + "/health", headers=auth(), timeout=30).json()
    assert tags.status_code == 200 and took < 3, f"the listing took {took:.1f}s"
    assert "llama3.2:latest" in [m["name"] for m in tags.json()["models"]]
    assert models.status_code == 200 and "llama3.2:latest" in [m["id"] for m in models.json()["data"]]
    assert "did not answer within 1s (routing.refresh_timeout)" in (proxy.log_dir / "error.log").read_text()
    gpu2 = next(u for u in health["upstreams"] if u["name"] == "gpu2")
    assert gpu2["state"] == "down" and gpu2["last_error"] == gpu2["error"]
    assert gpu2["error"].endswith("did not answer within 0.5s (service.health_timeout)")


def test_health_reports_its_own_failed_probe_as_last_error_and_keeps_it(start_proxy):
    port = free_port()
    proxy = start_proxy(base_config(f"http://127.0.0.1:{port}", health_cache_seconds=0), workers=1)
    down = requests.get(proxy.url + "/health", headers=auth()).json()["upstreams"][0]
    assert down["state"] == "down" and "connection refused" in down["error"]
    assert down["last_error"] == down["error"]
    with FakeOllama().start(port):
        back = requests.get(proxy.url + "/health", headers=auth()).json()["upstreams"][0]
    assert back["state"] == "ok" and "error" not in back
    assert back["last_error"] == down["error"]  # the most recent failure, still told after recovery


def test_management_goes_to_the_server_the_header_names(routed, servers, client):
    default, gpu2, _ = servers
    with ollama.Client(host=routed.url, headers={**auth(MANAGE), "X-Ollama-Server": "gpu2"}) as on_gpu2:
        on_gpu2.pull("gemma3")
    assert "gemma3:latest" in gpu2.models and "gemma3:latest" not in default.models
    with ollama.Client(host=routed.url, headers=auth(MANAGE)) as on_default:
        on_default.copy("qwen3:8b", "qwen3-copy")
    assert "qwen3-copy:latest" in default.models
    unknown = requests.post(routed.url + "/api/pull", headers={**auth(MANAGE), "X-Ollama-Server": "gpu9"},
                            json={"model": "gemma3"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == ("X-Ollama-Server: 'gpu9' is not an Ollama server; "
                                       "models are managed on: default, gpu2, gpu3")


def test_a_translated_surface_frees_its_slot(routed, servers):
    """Closing an OpenAI or Anthropic answer gives the server's slot back, as the native one does."""
    with openai.OpenAI(base_url=routed.url + "/v1", api_key=GENERATE, max_retries=0) as oa_client, \
            anthropic.Anthropic(base_url=routed.url, api_key=GENERATE, max_retries=0) as an_client:
        for _ in range(3):  # gpu3 takes one request at once: a slot kept would make the next one wait, then 503
            oa_client.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "x"}])
            an_client.messages.create(model="mistral", max_tokens=10, messages=[{"role": "user", "content": "x"}])
            with oa_client.chat.completions.stream(model="mistral", messages=[{"role": "user", "content": "x"}]) as s:
                s.until_done()
