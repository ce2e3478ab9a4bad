"""Budgets through the real server: spent exactly across workers and instances, refused once spent."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config
from tests.e2e.server import wait_for
from tests.e2e.test_routes import scrape

BUDGET = 600  # tokens a day for the team: too little to lease, each request reads and charges the store
LEASED_BUDGET = 6000  # enough that workers lease it (``access.leases``) for most of the way, then not
PEOPLE = 4  # clients asking at once, each until refused


def _spend_until_refused(proxies, secrets: list[str]) -> tuple[list[int], list[requests.Response]]:
    """Client n asks through proxies[n % len(proxies)] until refused; return each answer's tokens, and the refusals."""
    served: list[int] = []  # the tokens of each answer, as Ollama counted them
    refused: list[requests.Response] = []
    lock = threading.Lock()

    def ask(n: int) -> None:
        url, secret = proxies[n % len(proxies)].url, secrets[n]
        for turn in range(2000):
            answer = requests.post(url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                                   json={"model": "llama3.2", "stream": False,
                                         "messages": [{"role": "user", "content": f"question {n}.{turn}"}]})
            with lock:
                if answer.status_code != 200:
                    refused.append(answer)
                    return
                served.append(answer.json()["prompt_eval_count"] + answer.json()["eval_count"])
    asking = [threading.Thread(target=ask, args=(n,)) for n in range(len(secrets))]
    for thread in asking:
        thread.start()
    for thread in asking:
        thread.join(120)
    return served, refused


def _spent(proxy) -> dict:
    (budget,) = json.loads(cli(proxy, "budgets", "list", "--format", "json").stdout)
    return budget


def _assert_spent_exactly(proxy, fake, served: list[int], refused: list[requests.Response], amount: int = BUDGET
                          ) -> None:
    # An answer is charged as its response closes, just after its client has read it: the last may be a moment late
    # (a lease's charges land as it ends, a second after it began).
    assert wait_for(lambda: _spent(proxy)["spent"] >= sum(served), timeout=5)
    time.sleep(0.5)
    budget = _spent(proxy)
    assert budget["spent"] == sum(served)  # every answer charged, once, whichever worker or instance served it
    assert budget["spent"] >= amount and budget["left"] == 0
    # Overshot only by what was running when it ran out: each client's answer in flight, and the next it may send
    # in the moment between reading an answer and that answer's charge landing (as its response closes).
    assert budget["spent"] - amount < 2 * PEOPLE * max(served)
    assert len(fake.calls("/api/chat")) == len(served)  # no refused request reached Ollama
    assert len(refused) == PEOPLE and {r.status_code for r in refused} == {429}
    for refusal in refused:
        assert refusal.json()["error"].startswith(f"team 'research' spent its day's budget of {amount} tokens")
        assert int(refusal.headers["Retry-After"]) >= 1
        assert refusal.headers["X-Budget-Remaining"] == "0; period=day; unit=tokens"


def _team_with_a_budget(proxy, amount: int = BUDGET) -> list[str]:
    assert cli(proxy, "teams", "create", "research").returncode == 0
    secrets = [create_key(proxy, "--name", f"member{n}", "--team", "research") for n in range(PEOPLE)]
    made = cli(proxy, "budgets", "set", "--team", "research", "--period", "day", "--tokens", str(amount))
    assert made.returncode == 0, made.stderr
    return secrets


class LeaseWatch:
    """What workers held leased of the one budget, read through ``budgets list`` while clients spend it."""

    def __init__(self, proxy):
        self.proxy, self.seen, self._done = proxy, [], threading.Event()
        self._thread = threading.Thread(target=self._watch)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            self.seen.append(_spent(self.proxy)["leased"])

    def stop(self) -> list[float]:
        self._done.set()
        self._thread.join()
        return self.seen


@pytest.mark.parametrize("amount", [BUDGET, LEASED_BUDGET], ids=["read-each-time", "leased"])
def test_a_hard_budget_is_spent_exactly_and_overshot_only_by_what_was_already_running(start_proxy, fake, amount):
    proxy = start_proxy(base_config(fake.url), workers=2)
    secrets = _team_with_a_budget(proxy, amount)
    watch = LeaseWatch(proxy)
    served, refused = _spend_until_refused([proxy], secrets)
    leased = watch.stop()
    _assert_spent_exactly(proxy, fake, served, refused, amount)
    assert (max(leased) > 0) is (amount == LEASED_BUDGET)  # leased most of the way, the small one never
    assert wait_for(lambda: _spent(proxy)["leased"] == 0, timeout=5)  # no lease near its end; the last given back
    trail = json.loads(cli(proxy, "audit", "--format", "json").stdout)
    assert trail[-1]["action"] == "budget.set" and trail[-1]["after"]["amount"] == amount


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("amount", [BUDGET, LEASED_BUDGET], ids=["read-each-time", "leased"])
def test_two_instances_spend_one_budget_exactly(start_proxy, fake, postgres_cluster, redis_server, amount):
    """Two instances of two workers, one PostgreSQL store, one Redis for the limits: one count for all."""
    config = base_config(fake.url)
    config["store"] = {"url": postgres_cluster.new_database()}
    config["ratelimit"] = {"storage_url": redis_server.url}
    first, second = (start_proxy(copy.deepcopy(config), workers=2) for _ in range(2))  # logs of their own
    secrets = _team_with_a_budget(first, amount)
    watch = LeaseWatch(second)
    served, refused = _spend_until_refused([first, second], secrets)
    leased = watch.stop()
    _assert_spent_exactly(second, fake, served, refused, amount)
    assert (max(leased) > 0) is (amount == LEASED_BUDGET)


GPU_BUDGET = 2.0  # GPU-seconds a day for one key
SLOTS = {"scheduling": True, "num_parallel": 2, "max_loaded_models": 1}  # the fake's: two answers at once
QUEUED = 12  # requests the key sends at once, all checked on arrival before any answer is charged


@pytest.fixture
def slow_gpu():
    """A fake Ollama that runs two answers at once, each about half a GPU-second long."""
    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama(num_parallel=SLOTS["num_parallel"], max_loaded_models=1).start()
    fake.script("llama3.2", chunk_delay=0.12)
    yield fake
    fake.stop()


def _flood(proxies, secret: str) -> tuple[list[float], list[requests.Response]]:
    """Send QUEUED requests at once, alternating between ``proxies``; return the GPU-seconds served, the refusals."""
    def ask(n: int) -> requests.Response:
        return requests.post(proxies[n % len(proxies)].url + "/api/chat", headers={"Authorization": f"Bearer {secret}"},
                             json={"model": "llama3.2", "stream": False,
                                   "messages": [{"role": "user", "content": f"question number {n}"}]}, timeout=60)
    with ThreadPoolExecutor(QUEUED) as pool:
        answers = list(pool.map(ask, range(QUEUED)))
    served = [a.json()["total_duration"] / 1e9 for a in answers if a.status_code == 200]
    return served, [a for a in answers if a.status_code != 200]


def _assert_refused_at_the_grant(proxy, fake, served: list[float], refused: list[requests.Response]) -> None:
    assert served and refused and len(served) + len(refused) == QUEUED
    assert len(fake.calls("/api/chat")) == len(served)  # no refused request reached Ollama
    for refusal in refused:
        assert refusal.status_code == 429, refusal.text
        assert refusal.json()["error"].startswith(f"key 'nightly' spent its day's budget of {GPU_BUDGET:g} gpu-seconds")
        assert int(refusal.headers["Retry-After"]) >= 1
    # They passed the check on arrival (nothing was spent yet), waited for a slot, and were refused at its grant.
    waited = [float(re.search(r"queue;dur=([\d.]+)", r.headers["Server-Timing"]).group(1)) for r in refused]
    assert max(waited) > 100, waited
    assert wait_for(lambda: _spent(proxy)["spent"] >= round(sum(served), 3) - 0.01, timeout=5)
    spent = _spent(proxy)["spent"]
    assert abs(spent - sum(served)) < 0.01
    # Overshot only by what ran when it ran out, one answer per slot: a slot is given back once its answer's charge
    # has landed, so the request granted it next reads a spend that holds it (docs/budgets.md).
    assert spent - GPU_BUDGET < SLOTS["num_parallel"] * max(served), (spent, served)


def _key_with_a_gpu_budget(proxy) -> str:
    secret = create_key(proxy, "--name", "nightly")
    made = cli(proxy, "budgets", "set", "--key", "nightly", "--period", "day", "--gpu-seconds", f"{GPU_BUDGET:g}")
    assert made.returncode == 0, made.stderr
    return secret


def test_queued_requests_are_refused_at_their_grant_once_a_hard_budget_is_spent(start_proxy, slow_gpu):
    proxy = start_proxy(base_config(slow_gpu.url, **SLOTS), workers=2)
    served, refused = _flood([proxy], _key_with_a_gpu_budget(proxy))
    _assert_refused_at_the_grant(proxy, slow_gpu, served, refused)


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_refuse_queued_requests_at_their_grant(start_proxy, slow_gpu, postgres_cluster, redis_server):
    """Two instances of two workers share one scheduler (Redis) and one store (PostgreSQL)."""
    config = base_config(slow_gpu.url, **SLOTS)
    config["store"] = {"url": postgres_cluster.new_database()}
    config["ratelimit"] = {"storage_url": redis_server.url}
    first, second = (start_proxy(copy.deepcopy(config), workers=2) for _ in range(2))
    served, refused = _flood([first, second], _key_with_a_gpu_budget(first))
    _assert_refused_at_the_grant(second, slow_gpu, served, refused)


FAULT_FOR = 4.0  # seconds the store is broken, again and again, while budgeted requests run
ASKERS = 6  # clients asking at once


def _cut_connections(cluster, database: str, stop: threading.Event) -> int:
    """Terminate every connection the proxy holds to ``database`` every 100 ms until ``stop``; return how many."""
    from sqlalchemy import text

    admin = cluster.admin_engine()
    cut = 0
    try:
        with admin.connect() as connection:
            while not stop.wait(0.1):
                cut += connection.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :database AND pid <> pg_backend_pid()"), {"database": database}).scalar()
    finally:
        admin.dispose()
    return cut


def _restart(cluster, _database: str, stop: threading.Event) -> int:
    """Crash the server and start it again a second later, every 1.5 s until ``stop``; return how many times."""
    restarts = 0
    while not stop.wait(0.5):
        cluster.restart(down_for=1.0)
        restarts += 1
    return restarts


def _chat(proxy, secret: str, content: str) -> requests.Response:
    """Ask for a whole answer, on a connection of its own closed once answered (a kept answer holds no socket)."""
    return requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}", "Connection": "close"},
                         json={"model": "llama3.2", "stream": False,
                               "messages": [{"role": "user", "content": content}]}, timeout=30)


def _ask_until(proxy, secret: str, stop: threading.Event, answers: list[requests.Response]) -> None:
    while not stop.is_set():
        answers.append(_chat(proxy, secret, "how far?"))


def _tokens(answer: requests.Response) -> int:
    return answer.json()["prompt_eval_count"] + answer.json()["eval_count"]


@pytest.fixture
def own_postgres(request):
    """A PostgreSQL server of the test's own (it is crashed and started again), for tests marked ``postgres``."""
    request.getfixturevalue("postgres_cluster")  # the marker checked, the server installed
    from tests.services.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("fault", [_cut_connections, _restart], ids=["connections-cut", "server-restarted"])
def test_a_store_broken_under_budgeted_load_ends_each_request_cleanly_and_charges_what_ran(
        start_proxy, fake, own_postgres, fault):
    """PostgreSQL's connections are terminated every 100 ms, or the server crashes and is started again, while
    budgeted requests run: each request gets its answer or a clean 503, the pool mends itself once the store is
    whole, and what was charged is what ran."""
    config = base_config(fake.url)
    config["store"] = {"url": own_postgres.new_database()}
    proxy = start_proxy(config, workers=2)
    secrets = _team_with_a_budget(proxy)
    assert cli(proxy, "budgets", "set", "--team", "research", "--period", "day", "--tokens", "1e9").returncode == 0
    _chat(proxy, secrets[0], "warm")
    before = _spent(proxy)["spent"]  # the warming answer, charged
    stop, answers = threading.Event(), []
    with ThreadPoolExecutor(ASKERS + 1) as pool:
        breaking = pool.submit(fault, own_postgres, config["store"]["url"].rsplit("/", 1)[1], stop)
        asking = [pool.submit(_ask_until, proxy, secrets[n % PEOPLE], stop, answers) for n in range(ASKERS)]
        time.sleep(FAULT_FOR)
        stop.set()
        broken = breaking.result(timeout=60)
        for each in asking:
            each.result(timeout=60)  # every request ended within its client's 30 s
    served = [a for a in answers if a.status_code == 200]
    assert broken > 0 and len(served) > 20, (broken, len(served))
    for refused in (a for a in answers if a.status_code != 200):  # only the store, said in the native shape
        assert refused.status_code == 503, refused.text
        assert "store" in refused.json()["error"], refused.text
    after = [_chat(proxy, secrets[1], "mended?") for _ in range(20)]
    assert [a.status_code for a in after] == [200] * 20  # no broken connection went back into the pool
    assert "Traceback" not in (proxy.log_dir / "error.log").read_text() + proxy.stderr()
    # A charge the store did not take is counted lost (one cut as it committed may have landed nonetheless).
    lost = scrape(proxy, "ollama_proxy_budget_charges_lost_total")
    most = before + sum(_tokens(a) for a in served + after)
    sure = most - lost * max(_tokens(a) for a in served)
    assert wait_for(lambda: _spent(proxy)["spent"] >= sure, timeout=10)
    time.sleep(0.5)
    assert sure <= _spent(proxy)["spent"] <= most, (sure, most, lost)


def test_a_reload_under_budgeted_load_answers_every_request_and_charges_each_once(start_proxy, fake):
    """gunicorn reloaded twice (new workers, the old ones finishing theirs) while six clients send budgeted
    requests on the embedded SQLite store: every request is answered and charged, once."""
    proxy = start_proxy(base_config(fake.url), workers=2)
    secrets = _team_with_a_budget(proxy)
    assert cli(proxy, "budgets", "set", "--team", "research", "--period", "day", "--tokens", "1e9").returncode == 0
    old_workers = proxy.worker_pids()
    stop, answers = threading.Event(), []
    with ThreadPoolExecutor(ASKERS) as pool:
        asking = [pool.submit(_ask_until, proxy, secrets[n % PEOPLE], stop, answers) for n in range(ASKERS)]
        for _ in range(2):
            time.sleep(1.5)
            proxy.signal(signal.SIGHUP)
        time.sleep(1.5)
        stop.set()
        for each in asking:
            each.result(timeout=60)
    assert wait_for(lambda: old_workers.isdisjoint(proxy.worker_pids()), timeout=30)  # each finished, then left
    assert [a.status_code for a in answers] == [200] * len(answers) and len(answers) > 20
    served = sum(_tokens(a) for a in answers)
    assert wait_for(lambda: _spent(proxy)["spent"] >= served, timeout=10)
    time.sleep(0.5)
    assert _spent(proxy)["spent"] == served
    assert scrape(proxy, "ollama_proxy_budget_charges_lost_total") == 0


def test_a_worker_killed_while_it_holds_leases_loses_at_most_its_last_leases_charges(start_proxy, fake):
    """A worker SIGKILLed under budgeted load (leased: far from the budget's end) takes the charges of its last
    lease with it, never more, and never one twice; its leases lapse, and the budget is whole for the others."""
    proxy = start_proxy(base_config(fake.url), workers=2)
    secrets = _team_with_a_budget(proxy)
    assert cli(proxy, "budgets", "set", "--team", "research", "--period", "day", "--tokens", "1e9").returncode == 0
    stop, answered, failed = threading.Event(), [], []

    def ask(secret: str) -> None:
        while not stop.is_set():
            try:
                answer = _chat(proxy, secret, "how far?")
            # its worker was killed under it: before its answer, or between the answer's head and its body
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                failed.append(time.monotonic())
                continue
            assert answer.status_code == 200, answer.text
            answered.append((time.monotonic(), _tokens(answer)))

    watch = LeaseWatch(proxy)
    with ThreadPoolExecutor(ASKERS) as pool:
        asking = [pool.submit(ask, secrets[n % PEOPLE]) for n in range(ASKERS)]
        time.sleep(3.0)
        victim = min(proxy.worker_pids())
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for each in asking:
            each.result(timeout=60)
    assert max(watch.stop()) > 0  # leased
    assert victim not in proxy.worker_pids() and len(proxy.worker_pids()) == 2
    served = sum(tokens for _, tokens in answered)
    # Its last lease began at most a lease's time (1 s) before it died; a second more of margin for a busy worker.
    at_risk = sum(tokens for moment, tokens in answered if killed_at - 2.0 <= moment <= killed_at + 0.5)
    assert wait_for(lambda: _spent(proxy)["spent"] >= served - at_risk, timeout=10)
    time.sleep(1.5)  # the live workers' leases end and land
    spent = _spent(proxy)
    assert served - at_risk <= spent["spent"] <= served, (served, at_risk, spent)
    assert wait_for(lambda: _spent(proxy)["leased"] == 0, timeout=10)  # given back, or lapsed with their worker
    assert [_chat(proxy, secrets[0], "still held?").status_code for _ in range(10)] == [200] * 10
