import json
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from ollama_proxy.backends import pool as pool_module
from ollama_proxy.backends.pool import OllamaPool
from ollama_proxy.backends.pool_servers import rank
from ollama_proxy.config import OllamaServerSettings, RoutingSettings, ServiceSettings
from ollama_proxy.errors import Overloaded, UpstreamConnectTimeout, UpstreamTimeout, UpstreamUnavailable
from ollama_proxy.relay.waiting import OPENING_KEY
from ollama_proxy.scheduler.admission import Admitted, Requester

SERVICE = ServiceSettings("http://default:11434", 1.0, 5.0, 5.0, 1.0, 10, 1.0)


class StubAnswer:
    def __init__(self, status, body=b"{}"):
        self.status, self.body, self.closed = status, body, False

    def read(self):
        return self.body

    def json(self):
        return json.loads(self.body)

    def raise_for_error(self):
        pass

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StubServer:
    """An Ollama server that lists its models and answers chat with a status or a failure."""

    def __init__(self, name, models, chat=200):
        self.name, self.models, self.chat = name, models, chat
        self.describe = f"Ollama {name}"
        self.settings = SERVICE
        self.calls = 0

    def open(self, method, path, **request):
        if path in ("/api/tags", "/api/ps"):
            names = self.models if path == "/api/tags" else []
            return StubAnswer(200, json.dumps({"models": [{"name": n} for n in names]}).encode())
        self.calls += 1
        if isinstance(self.chat, Exception):
            raise self.chat
        return StubAnswer(self.chat)


def _pool(tmp_path, *stubs, cooldown=30.0, slot_wait=0.2, max_concurrent=None, scheduling=True):
    settings = tuple(OllamaServerSettings(s.name, f"http://{s.name}:1", max_concurrent, (), scheduling=scheduling)
                     for s in stubs[1:])
    pool = OllamaPool(SERVICE, settings, RoutingSettings(60.0, 1.0, cooldown, slot_wait), str(tmp_path))
    for server, stub in zip(pool.servers, stubs, strict=True):
        server.backend = stub
    return pool


@pytest.mark.parametrize("failure", [
    UpstreamUnavailable("cannot reach: connection refused"),
    UpstreamConnectTimeout("did not accept a connection within 1s"),
    503,
])
def test_a_failing_server_is_passed_over_and_cooled_down(tmp_path, failure):
    first = StubServer("default", ["m:latest"], chat=failure)
    second = StubServer("gpu2", ["m:latest"])
    pool = _pool(tmp_path, first, second)
    pool.servers[0].loaded = frozenset(["m:latest"])  # preferred, until it fails
    with pool.open("m", "POST", "/api/chat") as answer:
        assert (answer.status, answer.server) == (200, "gpu2")
    assert pool.servers[0].cooling(time.monotonic()) and pool.servers[0].last_error
    with pool.open("m", "POST", "/api/chat") as answer:
        assert answer.server == "gpu2"
    assert first.calls == 1  # not tried again while cooling down


def test_after_the_cooldown_the_server_is_used_again(tmp_path):
    first = StubServer("default", ["m:latest"], chat=UpstreamUnavailable("refused"))
    pool = _pool(tmp_path, first, StubServer("gpu2", ["m:latest"], chat=UpstreamUnavailable("refused")),
                 cooldown=0.2)
    with pytest.raises(UpstreamUnavailable):
        pool.open("m", "POST", "/api/chat")
    first.chat = 200
    time.sleep(0.25)
    with pool.open("m", "POST", "/api/chat") as answer:
        assert answer.server == "default"


def test_the_last_servers_error_is_the_answer(tmp_path):
    pool = _pool(tmp_path, StubServer("default", ["m:latest"], chat=500), StubServer("gpu2", ["m:latest"], chat=502))
    with pool.open("m", "POST", "/api/chat") as answer:
        assert answer.status in (500, 502)
    assert all(s.cooling(time.monotonic()) for s in pool.servers)


def test_a_timeout_after_connecting_is_not_retried_elsewhere(tmp_path):
    first = StubServer("default", ["m:latest"], chat=UpstreamTimeout("did not answer within 5s"))
    second = StubServer("gpu2", ["m:latest"])
    pool = _pool(tmp_path, first, second)
    pool.servers[0].loaded = frozenset(["m:latest"])
    with pytest.raises(UpstreamTimeout):
        pool.open("m", "POST", "/api/chat")
    assert second.calls == 0 and pool.servers[0].in_flight == 0


def test_max_concurrent_waits_then_overloaded_on_a_server_the_proxy_does_not_schedule(tmp_path):
    pool = _pool(tmp_path, StubServer("default", []), StubServer("gpu2", ["m:latest"]), max_concurrent=1,
                 slot_wait=0.2, scheduling=False)
    held = pool.open("m", "POST", "/api/chat")
    assert pool.servers[1].in_flight == 1
    started = time.monotonic()
    with pytest.raises(Overloaded, match="routing.slot_wait") as caught:
        pool.open("m", "POST", "/api/chat")
    assert 0.2 <= time.monotonic() - started < 1.0
    assert caught.value.status == 503 and caught.value.retry_after == 1
    held.close()
    held.close()  # closing twice frees the slot once
    assert pool.servers[1].in_flight == 0
    with pool.open("m", "POST", "/api/chat") as answer:
        assert answer.server == "gpu2"


def test_refresh_reads_models_and_cools_a_refusing_server(tmp_path):
    down = StubServer("gpu2", [])
    down.open = lambda method, path, **request: (_ for _ in ()).throw(UpstreamUnavailable("refused"))
    pool = _pool(tmp_path, StubServer("default", ["Phi4"]), down)
    pool.refresh()
    assert pool.servers[0].models == frozenset(["phi4:latest"])
    assert pool.servers[1].cooling(time.monotonic()) and pool.servers[1].last_error == "refused"


def test_a_single_server_is_never_polled(tmp_path):
    only = StubServer("default", ["m:latest"])
    only.open = lambda method, path, **request: pytest.fail(f"{method} {path} sent")
    pool = OllamaPool(SERVICE, (), RoutingSettings(), str(tmp_path))
    pool.servers[0].backend = only
    pool.start()
    assert rank(pool.servers, "anything", time.monotonic()) == pool.servers


def test_listings_are_bounded_by_the_refresh_timeout_not_the_read_timeout(tmp_path):
    sent = []
    hung = StubServer("gpu2", [])

    def hang(method, path, **request):
        sent.append(request)
        raise UpstreamTimeout(f"did not answer within {request['timeout'][1]:g}s ({request['timeout_setting']})")
    hung.open = hang
    pool = _pool(tmp_path, StubServer("default", ["m"]), hung)  # refresh_timeout 1 s, read_timeout 5 s
    (_, listed), (_, failed) = pool.gather("/api/tags")
    assert [m["name"] for m in listed["models"]] == ["m"]
    assert sent == [{"timeout": (1.0, 1.0), "timeout_setting": "routing.refresh_timeout"}]
    assert pool.servers[1].last_error == failed.message == "did not answer within 1s (routing.refresh_timeout)"


class StubAdmission:
    """Grants every request a slot on the server it names, at once or after a wait."""

    def __init__(self, server, wait=0.0):
        self.server, self.wait = server, wait

    def admit(self, who, model, candidates, body):
        time.sleep(self.wait)
        return Admitted(self.server, body, lambda: None)


@pytest.mark.parametrize("wait, body", [
    (0.0, b'{"model":"m"}'),  # granted at once, streamed: Ollama sends nothing before its first token
    (0.05, b'{"model":"m"}'),  # it waited
    (0.0, b'{"model":"m","stream":false}'),  # nothing comes before the whole answer
], ids=["prompt stream", "waited stream", "whole answer"])
def test_a_granted_request_is_cancelled_if_its_client_leaves_before_ollama_answers(tmp_path, monkeypatch, wait, body):
    pool = _pool(tmp_path, StubServer("default", ["m:latest"]))
    pool.admission = StubAdmission("default", wait)
    watching = []

    @contextmanager
    def cancelled_if_client_leaves(environ):
        watching.append(environ)
        yield
    monkeypatch.setattr(pool_module, "cancelled_if_client_leaves", cancelled_if_client_leaves)
    environ = {}
    with pool.open("m", "POST", "/api/chat", requester=Requester(environ=environ), body=body):
        pass
    assert watching == [environ]


def test_the_pool_tells_a_waiting_stream_when_its_request_is_sent(tmp_path):
    pool = _pool(tmp_path, StubServer("default", ["m:latest"]))
    pool.admission = StubAdmission("default")
    opening = SimpleNamespace(sent=0)
    with pool.open("m", "POST", "/api/chat", requester=Requester(environ={OPENING_KEY: opening}), body=b"{}"):
        assert opening.sent == 1
