"""/metrics through the real server: counts add up across gunicorn workers, dead ones included.

Several workers serve the requests; each writes its own files in the
multiprocess directory, and every scrape (served by any one worker) must see
the sum. Workers are killed on purpose to check that their counts stay and
their in-flight responses stop counting. The scheduler's state is read from
whichever worker is its arbiter, at each scrape.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import ollama
import openai
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ALICE, GENERATE, MANAGE, SCRAPE, auth, base_config
from tests.e2e.server import wait_for
from tests.fakes.ollama import FakeOllama

WORKERS = 3
TIMEOUT = 10
HELLO = [{"role": "user", "content": "Why is the sky blue?"}]


def scrape(server, token: str = SCRAPE) -> dict[tuple[str, frozenset], float]:
    answer = requests.get(server.url + "/metrics", headers=auth(token), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= have)


def eventually(server, name: str, expected: float, timeout: float = 10.0, **labels) -> dict:
    """Scrape until a value is reached: a request is counted when its response closes, after the client read it."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if value(samples, name, **labels) == expected or time.monotonic() > deadline:
            assert value(samples, name, **labels) == expected, f"{name}{labels}"
            return samples
        time.sleep(0.1)


def replace_workers(server, sig: int) -> None:
    """Send every worker ``sig``, then wait until gunicorn has started as many new ones."""
    old = server.worker_pids()
    for pid in old:
        os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while not (len(server.worker_pids()) == WORKERS and not server.worker_pids() & old):
        assert time.monotonic() < deadline, "gunicorn did not replace its workers"
        time.sleep(0.1)
    requests.get(server.url + "/health", timeout=TIMEOUT)  # the new workers answer


def get_tags(server, n: int) -> None:
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: requests.get(server.url + "/api/tags", headers=auth(),
                                                        timeout=TIMEOUT).status_code, range(n)))
    assert statuses == [200] * n


def open_streams(server, n: int) -> list:
    """Open n chat streams and read their first line; the caller keeps the line iterators alive."""
    streams = []
    for _ in range(n):
        answer = requests.post(server.url + "/api/chat", json={"model": "llama3.2", "messages": HELLO},
                               headers=auth(), stream=True, timeout=TIMEOUT)
        lines = answer.iter_lines()  # dropping this generator would close the connection
        next(lines)
        streams.append((answer, lines))
    return streams


def pids_with_counters(metrics_dir: Path) -> set[int]:
    return {int(re.search(r"_(\d+)\.db$", p.name).group(1)) for p in metrics_dir.glob("counter_*.db")}


def test_counts_add_up_across_workers_and_outlive_them(start_proxy, fake, tmp_path):
    metrics_dir = tmp_path / "metrics"
    server = start_proxy(base_config(fake.url), workers=WORKERS, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    get_tags(server, 40)
    replace_workers(server, signal.SIGTERM)
    get_tags(server, 40)
    samples = eventually(server, "ollama_proxy_requests_total", 80, endpoint="/api/tags", status="200")
    assert value(samples, "ollama_proxy_request_duration_seconds_count", endpoint="/api/tags") == 80
    assert len(pids_with_counters(metrics_dir)) >= 2, "the counts of several workers were added up"
    assert value(samples, "ollama_proxy_requests_in_flight") == 1  # the scrape itself


def test_a_killed_worker_stops_counting_its_open_streams(start_proxy, fake):
    fake.script("llama3.2:latest", reply=" ".join(["word"] * 200), chunk_delay=0.1)
    server = start_proxy(base_config(fake.url), workers=WORKERS)
    streams = open_streams(server, 3)
    assert value(scrape(server), "ollama_proxy_requests_in_flight") == 4  # three streams and the scrape
    replace_workers(server, signal.SIGKILL)  # no close, no decrement: only child_exit can forget them
    for answer, _ in streams:
        answer.close()
    assert value(scrape(server), "ollama_proxy_requests_in_flight") == 1


def test_open_streams_are_in_flight_until_they_close(start_proxy, fake):
    fake.script("llama3.2:latest", reply=" ".join(["word"] * 100), chunk_delay=0.05)
    server = start_proxy(base_config(fake.url), workers=WORKERS)
    streams = open_streams(server, 3)
    assert value(scrape(server), "ollama_proxy_requests_in_flight") == 4
    for answer, _ in streams:
        answer.close()  # the client leaves: the proxy closes the stream and stops counting it
    eventually(server, "ollama_proxy_requests_in_flight", 1)


def test_a_restart_starts_from_zero(start_proxy, fake, tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    first = start_proxy(base_config(fake.url), env=env)
    get_tags(first, 5)
    eventually(first, "ollama_proxy_requests_total", 5, endpoint="/api/tags")
    first.stop()
    second = start_proxy(base_config(fake.url), env=env)
    assert value(scrape(second), "ollama_proxy_requests_total", endpoint="/api/tags") == 0


def test_tokens_and_first_token_times_from_every_surface(proxy, fake):
    before = scrape(proxy)
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=ALICE) as client:
        chat = client.chat.completions.create(model="llama3.2", messages=HELLO)
    with anthropic.Anthropic(base_url=proxy.url, api_key=ALICE) as client:
        with client.messages.stream(model="llama3.2", max_tokens=64, messages=HELLO) as stream:
            message = stream.get_final_message()
    with ollama.Client(host=proxy.url, headers=auth(ALICE)) as client:
        last = list(client.chat(model="llama3.2", messages=HELLO, stream=True))[-1]
    prompt = chat.usage.prompt_tokens + message.usage.input_tokens + last.prompt_eval_count
    completion = chat.usage.completion_tokens + message.usage.output_tokens + last.eval_count
    name = "ollama_proxy_time_to_first_token_seconds_count"
    # Each is waited for: a scrape reads a worker's histograms and its counters from files of their own, one
    # after the other, so one taken as the last request is counted can hold its tokens and not its first token.
    eventually(proxy, name, value(before, name) + 3)
    after = eventually(proxy, "ollama_proxy_completion_tokens_total",
                       value(before, "ollama_proxy_completion_tokens_total") + completion)
    assert value(after, "ollama_proxy_prompt_tokens_total") - value(before, "ollama_proxy_prompt_tokens_total") \
        == prompt
    for surface in ("openai", "anthropic", "native"):
        assert value(after, name, surface=surface) - value(before, name, surface=surface) == 1, surface


def test_an_answer_read_whole_has_its_time_to_first_token_on_every_surface(proxy, fake):
    name = "ollama_proxy_time_to_first_token_seconds_count"
    before = scrape(proxy)
    native = requests.post(proxy.url + "/api/chat", json={"model": "llama3.2", "messages": HELLO, "stream": False},
                           headers=auth(), timeout=TIMEOUT)
    assert native.status_code == 200 and native.json()["done"] is True
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE) as client:
        client.chat.completions.create(model="llama3.2", messages=HELLO)
    after = eventually(proxy, name, value(before, name) + 2)
    for surface in ("native", "openai"):
        assert value(after, name, surface=surface) - value(before, name, surface=surface) == 1, surface
    entry = proxy.access_entry(native.headers["X-Request-Id"])
    assert entry["ttft_ms"] is not None and entry["ttft_ms"] <= entry["duration_ms"]


def test_key_names_are_shown_to_nobody_by_default(proxy, fake):
    requests.post(proxy.url + "/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False},
                  headers=auth(ALICE), timeout=TIMEOUT).raise_for_status()
    for token in (SCRAPE, MANAGE):
        text = requests.get(proxy.url + "/metrics", headers=auth(token), timeout=TIMEOUT).text
        assert "ollama_proxy_prompt_tokens_total{" in text and "alice" not in text
    assert requests.get(proxy.url + "/metrics", headers=auth(GENERATE), timeout=TIMEOUT).status_code == 403
    assert requests.get(proxy.url + "/metrics", timeout=TIMEOUT).status_code == 401


def test_key_names_when_the_configuration_asks_for_them(start_proxy, fake):
    server = start_proxy({**base_config(fake.url), "metrics": {"tokens": [SCRAPE], "key_names": True}})
    requests.post(server.url + "/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False},
                  headers=auth(ALICE), timeout=TIMEOUT).raise_for_status()
    deadline = time.monotonic() + 10  # counted when the response closes, after the client read it
    while value(scrape(server), "ollama_proxy_prompt_tokens_total", key="alice") == 0:
        assert time.monotonic() < deadline, "no token count labelled with alice"
        time.sleep(0.1)


def arbiter_pid(server) -> int | None:
    """The worker holding the scheduler's lock file: the one that decides (from /proc/locks)."""
    inode = os.stat(next(server.log_dir.glob(".scheduler-*.lock"))).st_ino
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:  # not a "->" waiter
                return int(fields[4])
    return None


def caught_signals(pid: int) -> str:
    return re.search(r"^SigCgt:\s*(\S+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1)


def workers_ready(server) -> bool:
    """Whether every worker has set its own signal handlers: one still booting would miss the signal to stop."""
    master = caught_signals(server.process.pid)
    pids = server.worker_pids()
    return len(pids) == WORKERS and all(caught_signals(pid) != master for pid in pids)


def test_the_scheduler_state_comes_from_whichever_worker_decides_and_a_silent_one_does_not_hang_a_scrape(
        start_proxy):
    slots = {"num_parallel": 2, "max_loaded_models": 1}
    gpu = FakeOllama(**slots).start()
    try:
        server = start_proxy(base_config(gpu.url, scheduling=True, **slots), workers=WORKERS)
        samples = eventually(server, "ollama_proxy_scheduler_up", 1)
        assert value(samples, "ollama_proxy_scheduler_slots", server="default") == 2
        arbiter = arbiter_pid(server)
        assert arbiter in server.worker_pids()
        os.kill(arbiter, signal.SIGSTOP)  # it holds the lock and its socket, and answers nothing
        try:
            samples = scrape(server)  # answered by another worker, after scheduling.status_timeout
        finally:
            os.kill(arbiter, signal.SIGCONT)
        assert value(samples, "ollama_proxy_scheduler_up") == 0
        assert not any(name == "ollama_proxy_scheduler_slots" for name, _ in samples)
        os.kill(arbiter, signal.SIGKILL)  # another worker takes the lock and decides from now on
        samples = eventually(server, "ollama_proxy_scheduler_up", 1)
        assert value(samples, "ollama_proxy_scheduler_slots", server="default") == 2
        assert arbiter_pid(server) not in (None, arbiter)
        assert wait_for(lambda: workers_ready(server), timeout=30)
    finally:
        gpu.stop()


def series(server) -> set[tuple[str, frozenset]]:
    """Return every series /metrics shows: a family's name and labels (a histogram's buckets are one series)."""
    answer = requests.get(server.url + "/metrics", headers=auth(SCRAPE), timeout=TIMEOUT)
    return {(family.name, frozenset((k, v) for k, v in s.labels.items() if k != "le"))
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def spellings(n: int) -> list[str]:
    """Return ``n`` ways to write llama3.2, as Ollama reads them all: letters in any case, the tag or not."""
    letters = "llama"
    cases = ["".join(c.upper() if bits >> i & 1 else c for i, c in enumerate(letters)) for bits in range(32)]
    return [f"{case}3.2{tag}" for tag in ("", ":latest", ":LATEST", ":Latest", ":lAtest", ":laTest", ":latEST")
            for case in cases][:n]


def test_made_up_methods_and_model_names_add_no_series_and_a_real_model_keeps_its_label(start_proxy, fake):
    server = start_proxy(base_config(fake.url))
    before = series(server)
    chat = {"messages": HELLO, "stream": False}
    with ThreadPoolExecutor(max_workers=8) as pool:
        methods = pool.map(lambda n: requests.request(f"X{n:06d}", server.url + "/", timeout=TIMEOUT).status_code,
                           range(200))
        made_up = pool.map(lambda n: requests.post(server.url + "/api/chat", json={**chat, "model": f"made-up-{n}"},
                                                   headers=auth(), timeout=TIMEOUT).status_code, range(200))
        spelled = pool.map(lambda name: requests.post(server.url + "/api/chat", json={**chat, "model": name},
                                                      headers=auth(), timeout=TIMEOUT).status_code, spellings(200))
        assert (set(methods), set(made_up), set(spelled)) == ({405}, {404}, {200})
    samples = eventually(server, "ollama_proxy_time_to_first_token_seconds_count", 200, model="llama3.2:latest")
    assert value(samples, "ollama_proxy_requests_total", method="other") == 200
    added = series(server) - before
    assert len(added) <= 30, sorted(added)
    shown = {value for _, labels in added for _, value in labels}
    assert {"llama3.2:latest", "other"} <= shown
    sent = {f"X{n:06d}" for n in range(200)} | {f"made-up-{n}" for n in range(200)} | set(spellings(200))
    assert shown & sent == {"llama3.2:latest"}
