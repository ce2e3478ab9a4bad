"""The proxy decides who runs next on the GPUs: two Ollama servers that run two requests at once each.

The fakes run requests in slots as Ollama's scheduler does (a FIFO, reloads on other options), and
record what they ran; the proxy, with two workers, must send them no more than they run, in fair
order, never what a departed client asked for, and with one context length per model.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import processes
from tests.e2e.command import create_key
from tests.e2e.conftest import ALICE, GENERATE, SCRAPE, auth, base_config
from tests.e2e.server import wait_for
from tests.fakes.ollama import FakeOllama

SLOTS = {"num_parallel": 2, "max_loaded_models": 1}
SERVERS = ("default", "gpu2")  # the names the proxy gives the two fakes
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


@pytest.fixture
def warm(scheduled, fakes):
    """The model loaded on both servers, and the proxy aware of it: every slot serves at once, none must load.

    Otherwise where the scheduler sends a backlog (wait for a warm slot, or load the model on the other
    server) depends on the timings it learned in earlier tests, and so does the order requests arrive in.
    """
    for fake in fakes:
        requests.post(fake.url + "/api/chat", json={"model": "llama3.2"}, timeout=10).raise_for_status()
        fake.requests = []  # the loads are no part of what the test sent
    assert wait_for(lambda: _loaded_on(scheduled) == set(SERVERS), timeout=10)
    return fakes


def _loaded_on(proxy) -> set[str]:
    samples = _samples(proxy)
    return {s.labels["server"] for s in samples
            if s.name == "ollama_proxy_scheduler_slots_busy" and s.labels["model"] == "llama3.2:latest"}


def _chat(proxy, token: str, text: str, **extra) -> int:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": text}], "stream": False, **extra}
    return requests.post(proxy.url + "/api/chat", headers=auth(token), json=body, timeout=60).status_code


def _metric(proxy, name: str) -> float:
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _samples(proxy) -> list:
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _sum(samples: list, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def _sums(samples: list, names) -> list[float]:
    return [_sum(samples, name) for name in names]


def _waiting(proxy) -> float:
    return _metric(proxy, "ollama_proxy_scheduler_waiting")


def _all_in(proxy, fakes, count: int) -> bool:
    """Whether ``count`` requests reached the scheduler, some still waiting, the others sent to a server."""
    waiting = _waiting(proxy)
    return waiting > 0 and waiting + sum(len(fake.calls("/api/chat")) for fake in fakes) == count


def _prompts_in_arrival_order(fakes) -> list[str]:
    calls = sorted((call for fake in fakes for call in fake.calls("/api/chat")), key=lambda call: call.at)
    return [call.json["messages"][-1]["content"] for call in calls]


def test_no_server_is_sent_more_than_it_runs_and_a_newcomer_goes_ahead_of_a_backlog(scheduled, fakes, warm):
    with ThreadPoolExecutor(9) as pool:
        backlog = [pool.submit(_chat, scheduled, GENERATE, f"batch {i}") for i in range(8)]
        assert wait_for(lambda: _all_in(scheduled, fakes, 8), timeout=20)  # some run, the others wait in the proxy
        newcomer = pool.submit(_chat, scheduled, ALICE, "newcomer")
        assert [f.result() for f in backlog] + [newcomer.result()] == [200] * 9
    for fake in fakes:
        assert fake.scheduler.stats().max_concurrent.get("llama3.2:latest", 0) <= 2
        # Ollama's own queue stayed empty: no request waited there behind a running answer (about a second).
        ran = [record for record in fake.scheduler.records() if record.started_at is not None]  # not the load
        assert len(ran) >= 2 and all(record.started_at - record.queued_at < 0.5 for record in ran)
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


def test_one_context_length_per_model_and_server_so_ollama_loads_it_once(scheduled, fakes):
    """Twelve requests at once asking num_ctx 2048, 8192 and none: Ollama reloads on any other value
    (server/sched.go, needsReload), so the proxy sends each the one value the model loads with on that
    server, the largest asked for it so far. The first time, the first request may load the model before
    the larger one is asked: one reload, to 8192, which stays. Then a fresh server loads it once, with 8192."""
    asks = [{"options": {"num_ctx": 2048}}, {"options": {"num_ctx": 8192}}, {}] * 4
    spared_before = _sum(_samples(scheduled), "ollama_proxy_scheduler_reloads_avoided_total")
    _at_once(scheduled, asks)
    # Counted: each request the proxy sent with the loaded model's context length in place of the one it asked.
    asked = {f"context {i}": extra.get("options", {}).get("num_ctx") for i, extra in enumerate(asks)}
    changed = [call for fake in fakes for call in fake.calls("/api/chat")
               if call.json.get("options", {}).get("num_ctx") != asked[call.json["messages"][-1]["content"]]]
    spared = _sum(_samples(scheduled), "ollama_proxy_scheduler_reloads_avoided_total") - spared_before
    assert 0 < spared <= len(changed)  # a load sent the largest value is a change, not a reload spared
    for fake in fakes:
        stats = fake.scheduler.stats()
        assert stats.reloads <= 1, stats  # the first load, then at most one reload to 8192, which stays
    sent = [call.json.get("options", {}).get("num_ctx") for fake in fakes for call in fake.calls("/api/chat")]
    assert 2048 not in sent[-3:]  # once loaded with 8192, a request asking less runs with 8192

    for fake in fakes:  # fresh servers: nothing loaded
        fake.reset()
        fake.script("llama3.2", chunk_delay=CHUNK)
    wait_for(lambda: not _loaded_on(scheduled), timeout=5)
    _at_once(scheduled, asks)
    loads = [fake.scheduler.stats() for fake in fakes]
    assert sum(stats.loads for stats in loads) >= 1 and all(stats.loads <= 1 for stats in loads), loads
    assert all(stats.reloads == 0 for stats in loads), loads
    sent = {call.json.get("options", {}).get("num_ctx") for fake in fakes for call in fake.calls("/api/chat")}
    assert sent == {8192}, sent  # those that asked none too: Ollama's default would be another value


@pytest.mark.alone  # the burst must reach the scheduler within load_gather (0.1 s): tests beside it would stretch it
def test_a_burst_of_mixed_contexts_for_a_model_never_asked_loads_it_once_per_server(scheduled, fakes):
    """The first load of a model the proxy never heard of waits ``load_gather`` for the requests that come with
    it: each server loads it once, with the largest value asked, and reloads it never."""
    for fake in fakes:
        fake.script("llava", chunk_delay=CHUNK)
    asks = [{"model": "llava"}, {"model": "llava", "options": {"num_ctx": 2048}},
            {"model": "llava", "options": {"num_ctx": 8192}}] * 4
    with ThreadPoolExecutor(len(asks)) as pool:  # the first a moment ahead of the others, as a burst comes
        first = pool.submit(_chat, scheduled, GENERATE, "context 0", **asks[0])
        time.sleep(0.05)
        rest = [pool.submit(_chat, scheduled, GENERATE, f"context {i}", **asks[i]) for i in range(1, len(asks))]
        assert [answer.result() for answer in [first, *rest]] == [200] * len(asks)
    loads = [fake.scheduler.stats() for fake in fakes]
    assert all(stats.loads <= 1 and stats.reloads == 0 for stats in loads), loads
    sent = {call.json.get("options", {}).get("num_ctx") for fake in fakes for call in fake.calls("/api/chat")}
    assert sent == {8192}, sent


def _at_once(proxy, asks: list[dict]) -> None:
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda i: _chat(proxy, GENERATE, f"context {i}", **asks[i]), range(len(asks))))
    assert answers == [200] * len(asks)


def test_a_model_runs_again_where_it_is_loaded_rather_than_load_on_the_other_server(scheduled, fakes):
    for fake in fakes:
        fake.script("qwen3:8b", chunk_delay=CHUNK)
    body = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    loads_before = _sum(_samples(scheduled), "ollama_proxy_scheduler_loads_total", kind="load")
    for _ in range(3):
        assert requests.post(scheduled.url + "/api/chat", headers=auth(), json=body, timeout=30).status_code == 200
    served = [len(fake.calls("/api/chat")) for fake in fakes]
    assert sorted(served) == [0, 3], served
    assert sum(fake.scheduler.stats().loads for fake in fakes) == 1
    assert _sum(_samples(scheduled), "ollama_proxy_scheduler_loads_total", kind="load") == loads_before + 1


def test_metrics_show_the_queue_for_each_server_and_model_and_the_busy_slots(scheduled, fakes):
    for fake in fakes:
        fake.script("llama3.2", reply=" ".join(["word"] * 20), chunk_delay=CHUNK)  # three seconds each
    llama = {"model": "llama3.2:latest"}
    scraped = {}

    def all_eight_counted() -> bool:
        """Each request runs or waits; one that waits is in the queue of both servers, which may both serve it."""
        samples = scraped["samples"] = _samples(scheduled)
        waiting = _sum(samples, "ollama_proxy_scheduler_waiting")  # the workers' own count
        depths = [_sum(samples, "ollama_proxy_scheduler_queue_depth", server=name, **llama) for name in SERVERS]
        busy = _sum(samples, "ollama_proxy_scheduler_slots_busy", **llama)
        return depths == [waiting, waiting] and waiting >= 4 and busy + waiting == 8

    with ThreadPoolExecutor(8) as pool:
        backlog = [pool.submit(_chat, scheduled, GENERATE, f"backlog {i}") for i in range(8)]
        assert wait_for(all_eight_counted, timeout=20)  # at most four run at once: at least four wait
        samples = scraped["samples"]
        assert _sum(samples, "ollama_proxy_scheduler_up") == 1
        assert [_sum(samples, "ollama_proxy_scheduler_slots", server=name) for name in SERVERS] == [2, 2]
        assert all(_sum(samples, "ollama_proxy_scheduler_slots_busy", server=name) <= 2 for name in SERVERS)
        assert [f.result() for f in backlog] == [200] * 8
    queued_and_busy = ("ollama_proxy_scheduler_queue_depth", "ollama_proxy_scheduler_slots_busy")
    assert wait_for(lambda: _sums(_samples(scheduled), queued_and_busy) == [0, 0])


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
            "script": create_key(scheduled, "--name", "script"),
            "heavy": create_key(scheduled, "--name", "heavy", "--weight", "2"),
            "light": create_key(scheduled, "--name", "light")}


def _hold_every_slot(pool: ThreadPoolExecutor, proxy, fakes) -> list:
    """Ask four questions as alice and wait until both servers run them: what comes next has to wait.

    One first, so that the scheduler knows how long her answers are: four at once before one of hers has ended
    would leave a slot for others' questions until it did (docs/scheduling.md), and the four would not run together.
    """
    assert _chat_as(proxy, ALICE, "how long") == 200
    for fake in fakes:
        fake.requests = []  # the tests read the order from the four on
    holding = [pool.submit(_chat_as, proxy, ALICE, f"holding {i}") for i in range(4)]
    assert wait_for(lambda: sum(len(f.calls("/api/chat")) for f in fakes) == 4, timeout=20)
    return holding


def test_interactive_work_goes_ahead_of_a_batch_keys_backlog(scheduled, fakes, warm, keys):
    with ThreadPoolExecutor(12) as pool:
        holding = _hold_every_slot(pool, scheduled, fakes)
        batch = [pool.submit(_chat_as, scheduled, keys["batch"], f"batch {i}") for i in range(4)]
        assert wait_for(lambda: _waiting(scheduled) == 4, timeout=20)
        chat = [pool.submit(_chat_as, scheduled, GENERATE, f"chat {i}") for i in range(4)]
        assert wait_for(lambda: _waiting(scheduled) == 8, timeout=20)
        assert [f.result() for f in holding + batch + chat] == [200] * 12
    order = _prompts_in_arrival_order(fakes)[4:]
    # By fair share alone the two would alternate; by class, the batch key's requests wait behind all four.
    assert sorted(order[:4]) == [f"chat {i}" for i in range(4)], order


def test_a_key_of_weight_2_gets_twice_the_slots_of_a_key_of_weight_1(scheduled, fakes, warm, keys):
    with ThreadPoolExecutor(28) as pool:
        holding = _hold_every_slot(pool, scheduled, fakes)
        heavy = [pool.submit(_chat_as, scheduled, keys["heavy"], f"heavy {i}") for i in range(12)]
        assert wait_for(lambda: _waiting(scheduled) == 12, timeout=20)
        light = [pool.submit(_chat_as, scheduled, keys["light"], f"light {i}") for i in range(12)]
        assert wait_for(lambda: _waiting(scheduled) == 24, timeout=20)
        assert [f.result() for f in holding + heavy + light] == [200] * 28
    first = _prompts_in_arrival_order(fakes)[4:16]
    # Both backlogged all along: slot-time 2:1, so about 8 of the first 12 (6 by equal shares, 12 by arrival).
    assert 7 <= sum(p.startswith("heavy") for p in first) <= 9, first


def test_a_front_end_naming_a_new_user_with_each_request_gets_one_keys_share(scheduled, fakes, warm, keys):
    with ThreadPoolExecutor(20) as pool:
        holding = _hold_every_slot(pool, scheduled, fakes)
        flood = [pool.submit(_chat_as, scheduled, keys["webui"], f"webui {i}", {"X-OpenWebUI-User-Id": f"fresh-{i}"})
                 for i in range(8)]
        assert wait_for(lambda: _waiting(scheduled) == 8, timeout=20)
        script = [pool.submit(_chat_as, scheduled, keys["script"], f"script {i}") for i in range(8)]
        assert wait_for(lambda: _waiting(scheduled) == 16, timeout=20)
        assert [f.result() for f in holding + flood + script] == [200] * 20
    first = _prompts_in_arrival_order(fakes)[4:12]
    # The front end's users share its key's part: about half of the first eight (all eight if each were a key).
    assert 3 <= sum(p.startswith("script") for p in first) <= 5, first


@pytest.mark.parametrize("trusted, newcomer_last", [(True, False), (False, True)])
def test_a_trusted_front_ends_users_each_get_a_fair_share(scheduled, fakes, warm, keys, trusted, newcomer_last):
    token = keys["webui" if trusted else "script"]
    _slow_answers(fakes)
    with ThreadPoolExecutor(9) as pool:
        backlog = [pool.submit(_chat_as, scheduled, token, f"ann {i}", {"X-OpenWebUI-User-Id": "ann"})
                   for i in range(8)]
        assert wait_for(lambda: _all_in(scheduled, fakes, 8), timeout=20)
        bob = pool.submit(_chat_as, scheduled, token, "bob", {"X-OpenWebUI-User-Id": "bob"})
        assert [f.result() for f in backlog] + [bob.result()] == [200] * 9
    order = _prompts_in_arrival_order(fakes)
    # One key, one queue: bob waits behind ann's backlog, unless the key may say whom it calls for.
    assert (order.index("bob") == 8) is newcomer_last, order


def _slow_answers(fakes) -> None:
    """Answers of about four seconds: ann's backlog is all in, four running and four waiting, long enough to see."""
    for fake in fakes:
        fake.script("llama3.2", chunk_delay=0.6)


def _openai_asker(proxy, token: str):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=token, max_retries=0, timeout=60)

    def ask(text: str, user: str) -> str:
        answer = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": text}],
                                                user=user)
        return answer.choices[0].message.content
    return client, ask


def _anthropic_asker(proxy, token: str):
    client = anthropic.Anthropic(base_url=proxy.url, api_key=token, max_retries=0, timeout=60)

    def ask(text: str, user: str) -> str:
        answer = client.messages.create(model="llama3.2", max_tokens=100, metadata={"user_id": user},
                                        messages=[{"role": "user", "content": text}])
        return answer.content[0].text
    return client, ask


@pytest.mark.parametrize("asker", [_openai_asker, _anthropic_asker], ids=["openai-user", "anthropic-metadata"])
@pytest.mark.parametrize("trusted, newcomer_last", [(True, False), (False, True)])
def test_a_trusted_front_end_may_name_its_users_in_the_body(scheduled, fakes, warm, keys, asker, trusted,
                                                             newcomer_last):
    client, ask = asker(scheduled, keys["webui" if trusted else "script"])  # one client, as an application has
    _slow_answers(fakes)
    with client, ThreadPoolExecutor(9) as pool:
        backlog = [pool.submit(ask, f"ann {i}", "ann") for i in range(8)]
        assert wait_for(lambda: _all_in(scheduled, fakes, 8), timeout=20)
        bob = pool.submit(ask, "bob", "bob")
        answers = [f.result() for f in backlog] + [bob.result()]
    assert answers == [f"You said: ann {i}" for i in range(8)] + ["You said: bob"]
    order = _prompts_in_arrival_order(fakes)
    # As with Open WebUI's headers: bob goes ahead of ann's backlog only if the key may say whom it calls for.
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
        queued = [(r.queued_at, r.started_at, r.finished_at) for r in gpu.scheduler.records()]
        assert all(started - at < 0.5 for at, started, _ in queued), queued

        # Every instance's /metrics shows the one shared queue: here, requests sent to the first alone.
        gpu.script("llama3.2", reply=" ".join(["word"] * 16), chunk_delay=CHUNK)
        llama = {"server": "default", "model": "llama3.2:latest"}

        def seen_by(proxy) -> list[float]:
            samples = _samples(proxy)
            return [_sum(samples, name, **llama) for name in ("ollama_proxy_scheduler_slots_busy",
                                                              "ollama_proxy_scheduler_queue_depth")]
        with ThreadPoolExecutor(6) as pool:
            backlog = [pool.submit(_chat, first, GENERATE, f"first only {i}") for i in range(6)]
            assert wait_for(lambda: seen_by(second) == [2, 4] and seen_by(first) == [2, 4], timeout=20)
            assert _waiting(second) == 0  # that instance's own requests: none
            assert [f.result() for f in backlog] == [200] * 6
    finally:
        gpu.stop()


def test_a_batch_keys_backlog_leaves_a_slot_free_for_people(scheduled, fakes, warm, keys):
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


def _proxy_on_two(start_proxy, gpus):
    """A fresh proxy of two workers over two fakes of two slots each, refreshing what they hold every half second."""
    config = base_config(gpus[0].url, scheduling=True, **SLOTS)
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": gpus[1].url, **SLOTS}]
    config["routing"] = {"refresh_interval": 0.5}
    return start_proxy(config, workers=2)


def test_a_batch_job_started_before_anyone_asks_leaves_a_slot_and_loads_the_idle_server(start_proxy):
    """A proxy just started has seen no question: the morning's batch job, or one running through a restart, still
    leaves people a slot, and loads the model on the server where it is not loaded rather than wait beside it."""
    gpus = [FakeOllama(**SLOTS).start() for _ in range(2)]
    try:
        for fake in gpus:
            fake.script("llama3.2", chunk_delay=1.0)  # each answer holds its slot about 8 s: the question comes first
        requests.post(gpus[0].url + "/api/chat", json={"model": "llama3.2"}, timeout=10).raise_for_status()
        gpus[0].requests = []
        proxy = _proxy_on_two(start_proxy, gpus)
        batch = create_key(proxy, "--name", "nightly", "--class", "batch")
        assert wait_for(lambda: _loaded_on(proxy) == {"default"}, timeout=10)  # warm on the first server only
        with ThreadPoolExecutor(8) as pool:
            backlog = [pool.submit(_chat_as, proxy, batch, f"batch {i}") for i in range(6)]
            assert wait_for(lambda: _all_in(proxy, gpus, 6) and _waiting(proxy) == 3, timeout=20)
            assert [len(fake.calls("/api/chat")) for fake in gpus] in ([2, 1], [1, 2])  # gpu2 loaded for it
            question = pool.submit(_chat_as, proxy, ALICE, "the first question of the day")
            assert question.result() == 200
            assert [f.result() for f in backlog] == [200] * 6
        order = _prompts_in_arrival_order(gpus)
        assert order.index("the first question of the day") == 3, order  # straight into the slot left
    finally:
        for fake in gpus:
            fake.stop()


def test_an_interactive_keys_first_answers_asked_at_once_leave_a_slot_for_the_first_question(start_proxy):
    """A script on a key of the default class asks as many at once as the model has slots, before any of its
    answers has ended: nothing says yet that they are long, so one slot waits for the first to end."""
    gpus = [FakeOllama(**SLOTS).start() for _ in range(2)]
    try:
        for fake in gpus:
            # Each answer holds its slot about 8 s: the question comes first.
            fake.script("llama3.2", reply=" ".join(["word"] * 8), chunk_delay=1.0)
            requests.post(fake.url + "/api/chat", json={"model": "llama3.2"}, timeout=10).raise_for_status()
            fake.requests = []
        proxy = _proxy_on_two(start_proxy, gpus)
        assert wait_for(lambda: _loaded_on(proxy) == set(SERVERS), timeout=10)  # warm on both: four slots
        with ThreadPoolExecutor(8) as pool:
            # Each a document to summarise: too long for a slot a worker borrows while nothing waits, which it tells
            # the scheduler of only later (scheduler/transport/client.py), so every one of them is seen asked.
            job = [pool.submit(_chat_as, proxy, GENERATE, f"summarise {i}: " + "a line of the document. " * 400)
                   for i in range(6)]
            assert wait_for(lambda: _all_in(proxy, gpus, 6) and _waiting(proxy) == 3, timeout=20)
            question = pool.submit(_chat_as, proxy, ALICE, "a question beside the script")
            assert question.result() == 200
            assert [f.result() for f in job] == [200] * 6
        order = _prompts_in_arrival_order(gpus)
        assert order.index("a question beside the script") == 3, order  # straight into the slot left
    finally:
        for fake in gpus:
            fake.stop()


def test_slots_lent_to_the_workers_while_nothing_waits_are_called_back_for_a_backlog(start_proxy):
    """Six slots and two workers: they borrow some while nothing waits; a backlog of 18 gets them all back."""
    gpu = FakeOllama(num_parallel=6, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", chunk_delay=CHUNK)
        proxy = start_proxy(base_config(gpu.url, scheduling=True, num_parallel=6, max_loaded_models=1), workers=2)
        llama = {"model": "llama3.2:latest"}

        def lent() -> float:
            return _sum(_samples(proxy), "ollama_proxy_scheduler_slots_lent", **llama)
        # Two slots to each worker that served one of these, or three to one that served them all (the kernel
        # decides which worker accepts a connection).
        borrowed = (3, 4)
        for i in range(8):  # one at a time: the workers join and borrow; later ones start on lent slots
            assert _chat(proxy, ALICE if i % 2 else GENERATE, f"alone {i}") == 200
        assert wait_for(lambda: lent() in borrowed)
        with ThreadPoolExecutor(19) as pool:
            backlog = [pool.submit(_chat, proxy, GENERATE, f"batch {i}") for i in range(18)]
            assert wait_for(lambda: _all_in(proxy, [gpu], 26), timeout=20)
            assert lent() == 0  # called back: whatever waits may have every slot
            newcomer = pool.submit(_chat, proxy, ALICE, "newcomer")
            assert [f.result() for f in backlog] + [newcomer.result()] == [200] * 19
        assert gpu.scheduler.stats().max_concurrent["llama3.2:latest"] == 6  # every slot used, never more
        ran = [record for record in gpu.scheduler.records() if record.started_at is not None]
        assert all(record.started_at - record.queued_at < 0.5 for record in ran)  # Ollama's queue stayed empty
        order = _prompts_in_arrival_order([gpu])[8:]
        assert order.index("newcomer") < 18, order  # fair order, not the workers' first come
        assert wait_for(lambda: lent() in borrowed)  # nothing waits: lent again
    finally:
        gpu.stop()


def test_in_arrival_order_a_newcomer_waits_behind_a_backlog_as_on_ollama(start_proxy):
    """``scheduling.order: arrival``: first come, first served, whoever sent them; each still waits in the proxy."""
    gpu = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", chunk_delay=CHUNK)
        config = base_config(gpu.url, scheduling=True, num_parallel=1, max_loaded_models=1)
        config["scheduling"] = {"order": "arrival"}
        proxy = start_proxy(config, workers=2)
        with ThreadPoolExecutor(5) as pool:
            backlog = [pool.submit(_chat, proxy, GENERATE, f"batch {i}") for i in range(4)]
            assert wait_for(lambda: _all_in(proxy, [gpu], 4), timeout=20)
            newcomer = pool.submit(_chat, proxy, ALICE, "newcomer")
            assert [f.result() for f in backlog] + [newcomer.result()] == [200] * 5
        assert _prompts_in_arrival_order([gpu])[-1] == "newcomer"  # fair order would have run it second
        assert gpu.scheduler.stats().max_concurrent["llama3.2:latest"] == 1
    finally:
        gpu.stop()


@pytest.mark.parametrize("victim", ["the arbiter's worker", "another worker"])
def test_a_worker_that_dies_gives_its_slot_back(start_proxy, victim):
    gpu = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", chunk_delay=2.0)  # the first answer would hold the only slot for minutes
        config = base_config(gpu.url, scheduling=True, num_parallel=1, max_loaded_models=1)
        config["scheduling"] = {"max_wait": 20}
        proxy = start_proxy(config, workers=2)
        master = proxy.process.pid
        assert wait_for(lambda: len(processes.workers(master)) == 2 and processes.arbiter(master) is not None)
        decider = processes.arbiter(master)
        doomed = decider if victim == "the arbiter's worker" else next(
            pid for pid in processes.workers(master) if pid != decider)
        connection = _connection_to(proxy, doomed)
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": " ".join(["w"] * 60)}]}
        headers = {**auth(GENERATE), "Content-Type": "application/json"}
        connection.request("POST", "/api/chat", json.dumps(body), headers)
        assert wait_for(lambda: any(r.started_at is not None for r in gpu.scheduler.records()))
        os.kill(doomed, signal.SIGKILL)
        gpu.script("llama3.2", chunk_delay=0.01)
        # The slot the dead worker held is free again at once; kept, this would wait out max_wait: a 503.
        assert _chat(proxy, GENERATE, "after the crash") == 200
        connection.close()
    finally:
        gpu.stop()


def _connection_to(proxy, worker: int) -> http.client.HTTPConnection:
    """A keep-alive connection that ``worker`` serves: the others are stopped while it is accepted."""
    others = [pid for pid in processes.workers(proxy.process.pid) if pid != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        connection.request("GET", "/api/version", headers=auth(GENERATE))
        connection.getresponse().read()
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)
    assert processes.worker_serving(proxy.process.pid, proxy.port, connection.sock.getsockname()[1]) == worker
    return connection


@pytest.mark.redis
@pytest.mark.parametrize("victim", ["the instance that decides", "the other instance"])
def test_an_instance_that_dies_gives_its_slot_back(start_proxy, redis_server, victim):
    gpu = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", chunk_delay=2.0)  # the first answer would hold the only slot for minutes
        configs = [base_config(gpu.url, scheduling=True, num_parallel=1, max_loaded_models=1) for _ in range(2)]
        for config in configs:
            config["ratelimit"] = {"storage_url": redis_server.url}
            config["scheduling"] = {"max_wait": 30}
        instances = [start_proxy(config, workers=1) for config in configs]
        assert wait_for(lambda: _deciding(redis_server.url, instances) is not None)
        decides = _deciding(redis_server.url, instances)
        doomed = decides if victim == "the instance that decides" else next(p for p in instances if p is not decides)
        survivor = next(p for p in instances if p is not doomed)
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": " ".join(["w"] * 60)}]}
        connection = http.client.HTTPConnection("127.0.0.1", doomed.port, timeout=60)
        headers = {**auth(GENERATE), "Content-Type": "application/json"}
        connection.request("POST", "/api/chat", json.dumps(body), headers)
        assert wait_for(lambda: any(r.started_at is not None for r in gpu.scheduler.records()))
        for pid in [doomed.process.pid, *processes.workers(doomed.process.pid)]:
            os.kill(pid, signal.SIGKILL)  # the whole instance: no worker left to say anything
        gpu.script("llama3.2", chunk_delay=0.01)
        # Its lease lapses and its slot is free again; kept, this would wait out max_wait: a 503.
        assert _chat(survivor, GENERATE, "after the crash") == 200
        connection.close()
    finally:
        gpu.stop()


def _deciding(redis_url: str, instances):
    """The instance whose worker holds the shared scheduler's lead (its Redis key names host:instance/pid/…)."""
    leader = redis.Redis.from_url(redis_url).get("ollama-proxy:scheduler:leader")
    pid = int(leader.decode().split("/")[1]) if leader else None
    return next((p for p in instances if pid in processes.workers(p.process.pid)), None)


def _transcription_form(model: str) -> tuple[bytes, str]:
    boundary = "audio-b0undary"
    parts = [('Content-Disposition: form-data; name="model"', model.encode()),
             ('Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav', b"RIFF" * 64)]
    body = b"".join(f"--{boundary}\r\n{head}\r\n\r\n".encode() + value + b"\r\n" for head, value in parts)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_an_audio_transcription_waits_for_its_slot_as_a_chat_does(start_proxy):
    """Ollama runs a transcription as a chat on the model: the proxy admits it, and drops one whose client left."""
    gpu = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", reply=" ".join(["word"] * 10), chunk_delay=0.15)
        proxy = start_proxy(base_config(gpu.url, scheduling=True, num_parallel=1, max_loaded_models=1), workers=2)
        body, content_type = _transcription_form("llama3.2")
        headers = {**auth(GENERATE), "Content-Type": content_type}
        with ThreadPoolExecutor(2) as pool:
            chat = pool.submit(_chat, proxy, GENERATE, "holds the only slot")
            assert wait_for(lambda: any(r.started_at for r in gpu.scheduler.records()))
            transcribed = pool.submit(requests.post, proxy.url + "/v1/audio/transcriptions", data=body,
                                      headers=headers, timeout=30)
            assert wait_for(lambda: _waiting(proxy) == 1)  # in the proxy's queue, not in Ollama's
            assert chat.result() == 200
            answer = transcribed.result()
        assert answer.status_code == 200 and answer.json()["text"]
        chat_run, audio_run = gpu.scheduler.records()
        assert audio_run.queued_at >= chat_run.finished_at - 0.05  # sent when the slot freed, never beside it
        # One whose client leaves while it waits is never sent.
        gpu.script("llama3.2", reply=" ".join(["word"] * 10), chunk_delay=0.3)
        with ThreadPoolExecutor(1) as pool:
            chat = pool.submit(_chat, proxy, GENERATE, "holds the slot again")
            assert wait_for(lambda: len(gpu.scheduler.records()) == 3)
            leaving = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
            leaving.request("POST", "/v1/audio/transcriptions", body, headers)
            assert wait_for(lambda: _waiting(proxy) == 1)
            leaving.close()
            assert wait_for(lambda: _waiting(proxy) == 0)
            assert chat.result() == 200
        assert len(gpu.calls("/v1/audio/transcriptions")) == 1
    finally:
        gpu.stop()


def test_one_token_sending_200_requests_at_once_is_refused_none_as_ollama_queues_512(start_proxy):
    """A batch script that works straight to Ollama (its queue holds 512) works the same through the proxy."""
    gpu = FakeOllama(num_parallel=2, max_loaded_models=1).start()
    try:
        gpu.script("llama3.2", reply="ok", chunk_delay=0.01)
        config = base_config(gpu.url, scheduling=True, num_parallel=2, max_loaded_models=1)
        config["scheduling"] = {"max_wait": 120}
        proxy = start_proxy(config, workers=2)
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": "one of many"}], "stream": True}

        def stream(_: int) -> int:
            with requests.post(proxy.url + "/api/chat", json=body, headers=auth(GENERATE), stream=True,
                               timeout=120) as answer:
                lines = [line for line in answer.iter_lines() if line.strip()]
                return answer.status_code if json.loads(lines[-1]).get("done") else 0
        with ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(stream, range(200)))
        assert statuses == [200] * 200
        assert gpu.scheduler.stats().max_concurrent["llama3.2:latest"] == 2
    finally:
        gpu.stop()
