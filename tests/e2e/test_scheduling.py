"""The proxy decides who runs next on the GPUs: two Ollama servers that run two requests at once each.

The fakes run requests in slots as Ollama's scheduler does (a FIFO, reloads on other options), and
record what they ran; the proxy, with two workers, must send them no more than they run, in fair
order, never what a departed client asked for, and with one context length per model.
"""

from __future__ import annotations

import json
import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.command import create_key
from tests.e2e.conftest import ALICE, GENERATE, SCRAPE, auth, base_config
from tests.e2e.server import wait_for
from tests.fakes.ollama import FakeOllama

SLOTS = {"num_parallel": 2, "max_loaded_models": 1}
CHUNK = 0.15  # seconds between the fakes' chunks: an answer of "You said: …" takes about a second


@pytest.fixture(scope="module")
def gpus():
    servers = [FakeOllama(**SLOTS).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def scheduled(gpus, tmp_path_factory):
    from tests.e2e.server import ProxyServer

    gpu1, gpu2 = gpus
    config = base_config(gpu1.url, scheduling=True, **SLOTS)
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": gpu2.url, **SLOTS}]
    config["routing"] = {"refresh_interval": 0.5}
    server = ProxyServer(config, tmp_path_factory.mktemp("scheduled"), workers=2).start()
    yield server
    server.stop()


@pytest.fixture
def fakes(gpus, scheduled):
    for fake in gpus:
        fake.reset()
        fake.script("llama3.2", chunk_delay=CHUNK)
    wait_for(lambda: _waiting(scheduled) == 0)
    return gpus


def _chat(proxy, token: str, text: str, **extra) -> int:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": text}], "stream": False, **extra}
    return requests.post(proxy.url + "/api/chat", headers=auth(token), json=body, timeout=60).status_code


def _metric(proxy, name: str) -> float:
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _waiting(proxy) -> float:
    return _metric(proxy, "ollama_proxy_scheduler_waiting")


def _prompts_in_arrival_order(fakes) -> list[str]:
    calls = sorted((call for fake in fakes for call in fake.calls("/api/chat")), key=lambda call: call.at)
    return [call.json["messages"][-1]["content"] for call in calls]


def test_no_server_is_sent_more_than_it_runs_and_a_newcomer_goes_ahead_of_a_backlog(scheduled, fakes):
    with ThreadPoolExecutor(9) as pool:
        backlog = [pool.submit(_chat, scheduled, GENERATE, f"batch {i}") for i in range(8)]
        assert wait_for(lambda: _waiting(scheduled) == 4, timeout=20)  # four run, four wait in the proxy
        newcomer = pool.submit(_chat, scheduled, ALICE, "newcomer")
        assert [f.result() for f in backlog] + [newcomer.result()] == [200] * 9
    for fake in fakes:
        assert fake.scheduler.stats().max_concurrent.get("llama3.2:latest", 0) <= 2
        # Ollama's own queue stayed empty: no request waited there behind a running answer (about a second).
        assert all(record.started_at - record.queued_at < 0.5 for record in fake.scheduler.records())
    order = _prompts_in_arrival_order(fakes)
    # Ollama's first come, first served would run the newcomer last, behind the whole backlog.
    assert len(order) == 9 and order.index("newcomer") < 8, order


def test_a_client_that_leaves_while_waiting_is_dropped_and_never_sent(scheduled, fakes):
    left_before = _metric(scheduled, "ollama_proxy_scheduler_client_left_total")
    with ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(_chat, scheduled, GENERATE, f"busy {i}") for i in range(4)]
        assert wait_for(lambda: sum(len(f.calls("/api/chat")) for f in fakes) == 4, timeout=20)
        body = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": "gone"}]}).encode()
        with socket.create_connection(("127.0.0.1", scheduled.port), timeout=10) as client:
            client.sendall(b"POST /api/chat HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
                           + f"Authorization: Bearer {ALICE}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            assert wait_for(lambda: _waiting(scheduled) == 1, timeout=20)
        assert wait_for(lambda: _waiting(scheduled) == 0, timeout=20)  # dropped at once, slots still busy
        assert [f.result() for f in busy] == [200] * 4
    assert "gone" not in _prompts_in_arrival_order(fakes)
    assert _metric(scheduled, "ollama_proxy_scheduler_client_left_total") == left_before + 1
    assert any(json.loads(line)["status"] == 499 for line in scheduled.access_lines())


def test_one_context_length_per_model_and_server_so_ollama_reloads_at_most_once(scheduled, fakes):
    asks = [{"options": {"num_ctx": 2048}}, {"options": {"num_ctx": 8192}}, {}] * 4
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda extra: _chat(scheduled, GENERATE, "context", **extra), asks))
    assert answers == [200] * len(asks)
    for fake in fakes:
        stats = fake.scheduler.stats()
        assert stats.reloads <= 1, stats  # the first load, then at most one reload to 8192, which stays
    sent = [call.json.get("options", {}).get("num_ctx") for fake in fakes for call in fake.calls("/api/chat")]
    assert 2048 not in sent[-3:]  # once loaded with 8192, a request asking less runs with 8192


def test_a_model_runs_again_where_it_is_loaded_rather_than_load_on_the_other_server(scheduled, fakes):
    for fake in fakes:
        fake.script("qwen3:8b", chunk_delay=CHUNK)
    body = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    for _ in range(3):
        assert requests.post(scheduled.url + "/api/chat", headers=auth(), json=body, timeout=30).status_code == 200
    served = [len(fake.calls("/api/chat")) for fake in fakes]
    assert sorted(served) == [0, 3], served
    assert sum(fake.scheduler.stats().loads for fake in fakes) == 1


def test_every_answer_says_how_long_it_queued(scheduled, fakes):
    answer = requests.post(scheduled.url + "/api/chat", headers=auth(), timeout=30,
                           json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]})
    timing = dict(part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(","))
    assert set(timing) == {"proxy", "queue", "upstream"} and float(timing["queue"]) >= 0


def _chat_as(proxy, token: str, text: str, headers: dict | None = None) -> int:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": text}], "stream": False}
    return requests.post(proxy.url + "/api/chat", headers={**auth(token), **(headers or {})}, json=body,
                         timeout=60).status_code


@pytest.fixture(scope="module")
def keys(scheduled):
    return {"batch": create_key(scheduled, "--name", "nightly", "--class", "batch"),
            "webui": create_key(scheduled, "--name", "webui", "--trusted-frontend"),
            "script": create_key(scheduled, "--name", "script")}


def test_interactive_work_goes_ahead_of_a_batch_keys_backlog(scheduled, fakes, keys):
    with ThreadPoolExecutor(12) as pool:
        holding = [pool.submit(_chat_as, scheduled, ALICE, f"holding {i}") for i in range(4)]
        assert wait_for(lambda: sum(len(f.calls("/api/chat")) for f in fakes) == 4, timeout=20)
        batch = [pool.submit(_chat_as, scheduled, keys["batch"], f"batch {i}") for i in range(4)]
        assert wait_for(lambda: _waiting(scheduled) == 4, timeout=20)
        chat = [pool.submit(_chat_as, scheduled, GENERATE, f"chat {i}") for i in range(4)]
        assert wait_for(lambda: _waiting(scheduled) == 8, timeout=20)
        assert [f.result() for f in holding + batch + chat] == [200] * 12
    order = _prompts_in_arrival_order(fakes)[4:]
    # By fair share alone the two would alternate; by class, the batch key's requests wait behind all four.
    assert sorted(order[:4]) == [f"chat {i}" for i in range(4)], order


@pytest.mark.parametrize("trusted, newcomer_last", [(True, False), (False, True)])
def test_a_trusted_front_ends_users_each_get_a_fair_share(scheduled, fakes, keys, trusted, newcomer_last):
    token = keys["webui" if trusted else "script"]
    with ThreadPoolExecutor(9) as pool:
        backlog = [pool.submit(_chat_as, scheduled, token, f"ann {i}", {"X-OpenWebUI-User-Id": "ann"})
                   for i in range(8)]
        assert wait_for(lambda: _waiting(scheduled) == 4, timeout=20)
        bob = pool.submit(_chat_as, scheduled, token, "bob", {"X-OpenWebUI-User-Id": "bob"})
        assert [f.result() for f in backlog] + [bob.result()] == [200] * 9
    order = _prompts_in_arrival_order(fakes)
    # One key, one queue: bob waits behind ann's backlog, unless the key may say whom it calls for.
    assert (order.index("bob") == 8) is newcomer_last, order


@pytest.mark.redis
def test_two_instances_sharing_redis_share_one_scheduler(start_proxy, redis_server):
    gpu = FakeOllama(**SLOTS).start()
    try:
        gpu.script("llama3.2", chunk_delay=CHUNK)
        configs = [base_config(gpu.url, scheduling=True, **SLOTS) for _ in range(2)]  # each its own log dir
        for config in configs:
            config["ratelimit"] = {"storage_url": redis_server.url}
        first, second = (start_proxy(config, workers=2) for config in configs)
        assert first.log_dir != second.log_dir
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _chat((first, second)[i % 2], GENERATE, f"shared {i}"), range(8)))
        assert answers == [200] * 8
        # Each instance alone would send the server two at once, four together: two would wait in Ollama's
        # queue behind a running answer (about a second). One scheduler for both sends it two.
        assert all(record.started_at - record.queued_at < 0.5 for record in gpu.scheduler.records())
    finally:
        gpu.stop()


def test_a_batch_keys_backlog_leaves_a_slot_free_for_people(scheduled, fakes, keys):
    assert _chat_as(scheduled, GENERATE, "a question first") == 200
    with ThreadPoolExecutor(8) as pool:
        batch = [pool.submit(_chat_as, scheduled, keys["batch"], f"batch {i}") for i in range(6)]
        assert wait_for(lambda: _waiting(scheduled) == 3, timeout=20)  # three run: one of the four slots held
        assert wait_for(lambda: sum(len(f.calls("/api/chat")) for f in fakes) == 4, timeout=20)
        question = pool.submit(_chat_as, scheduled, ALICE, "asked while the batch runs")
        assert question.result() == 200
        assert [f.result() for f in batch] == [200] * 6
    order = _prompts_in_arrival_order(fakes)
    assert order.index("asked while the batch runs") == 4, order  # straight into the slot held for it
