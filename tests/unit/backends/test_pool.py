import json
import threading
import time

import pytest

from ollama_proxy.backends.pool import OllamaPool, learn_models
from ollama_proxy.backends.pool_servers import rank
from ollama_proxy.config import RoutingSettings
from ollama_proxy.errors import UpstreamTimeout, UpstreamUnavailable
from tests.unit.backends.stub_servers import SERVICE, StubAnswer, StubServer, stub_pool


def test_refresh_reads_models_and_cools_a_refusing_server(tmp_path):
    down = StubServer("gpu2", [])
    down.open = lambda method, path, **request: (_ for _ in ()).throw(UpstreamUnavailable("refused"))
    pool = stub_pool(tmp_path, StubServer("default", ["Phi4"]), down)
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
    pool = stub_pool(tmp_path, StubServer("default", ["m"]), hung)  # refresh_timeout 1 s, read_timeout 5 s
    (_, listed), (_, failed) = pool.gather("/api/tags")
    assert [m["name"] for m in listed["models"]] == ["m"]
    assert sent == [{"timeout": (1.0, 1.0), "timeout_setting": "routing.refresh_timeout"}]
    assert pool.servers[1].last_error == failed.message == "did not answer within 1s (routing.refresh_timeout)"


def test_learn_models_starts_the_reads_without_waiting_and_models_known_waits_within_its_bound(tmp_path):
    answer = threading.Event()
    slow = StubServer("gpu2", ["phi4"])
    listing = slow.open

    def held(method, path, **request):
        answer.wait(5)
        return listing(method, path, **request)
    slow.open = held
    pool = stub_pool(tmp_path, StubServer("default", ["llama3.2"]), slow)

    class App:
        extensions = {"ollama_proxy.pool": pool}
    started = time.monotonic()
    learn_models(App())
    assert time.monotonic() - started < 0.5  # the worker boots on
    assert not pool.models_known(within=0.05)
    answer.set()
    assert pool.models_known(within=5)
    assert pool.servers[1].models == frozenset(["phi4:latest"])
    learn_models(object())  # an app without a pool: nothing to learn


def test_a_lone_servers_models_are_never_known(tmp_path):
    pool = OllamaPool(SERVICE, (), RoutingSettings(), str(tmp_path))
    pool.start(wait=False)
    assert not pool.models_known(within=0.01)


def test_a_model_listed_with_a_remote_host_runs_remotely_and_a_copy_noted_does_until_the_next_read(tmp_path):
    listed = [{"name": "team-model:latest", "remote_model": "gpt-oss:120b", "remote_host": "https://ollama.com:443"},
              {"name": "llama3.2:latest"}]
    only = StubServer("default", [])
    only.open = lambda method, path, **request: StubAnswer(200, json.dumps({"models": listed}).encode())
    pool = OllamaPool(SERVICE, (), RoutingSettings(), str(tmp_path))
    pool.servers[0].backend = only
    assert not pool.runs_remotely("team-model")  # a lone server's listing is read only when a client asks for one
    pool.gather("/api/tags")
    assert pool.runs_remotely("Team-Model") and not pool.runs_remotely("llama3.2")
    pool.note_remote("default", "made-here")
    assert pool.runs_remotely("made-here:latest")
    pool.gather("/api/tags")  # the server's word replaces the note
    assert not pool.runs_remotely("made-here") and pool.runs_remotely("team-model")


def test_the_refresh_thread_ends_quietly_when_the_process_exits_under_it(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", ["m"]), StubServer("gpu2", ["m"]))

    def exiting():
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")
    pool.refresh = exiting
    ended = threading.Thread(target=pool._refresh_forever, daemon=True)
    ended.start()
    ended.join(5)
    assert not ended.is_alive() and not pool.models_known()
