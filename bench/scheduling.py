"""Share two GPU servers between a batch job and four people chatting: ``python -m bench.scheduling``.

Two fake Ollama servers run requests in slots as Ollama does (two at once each, FIFO behind them,
one model loaded on both, 20 ms a token). A batch job keeps 24 answers of 300 tokens in flight;
four people each ask a 30-token question every 3 s. The same load is sent straight to the servers
(round-robin, as a client spreads it) and through the proxy (two gevent workers), once with the
batch job's key in class ``interactive`` and once in class ``batch``. Printed per run: the people's
wait for their first token (p50, p95, max), questions served and refused, batch answers served,
and the servers' slot use over the run (the batch job keeps them busy: it is near 100 % unless slots idle).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.measure import percentile
from tests.e2e.command import create_key
from tests.e2e.server import ProxyServer
from tests.fakes.ollama import FakeOllama

TOKEN_SECONDS = 0.02
BATCH_WORDS, QUESTION_WORDS = 298, 28  # the fake answers "You said: <prompt>": 300 and 30 tokens
BATCH_IN_FLIGHT, PEOPLE, ASK_EVERY = 24, 4, 3.0
SLOTS = {"num_parallel": 2, "max_loaded_models": 1}
PEOPLE_TOKENS = [f"person-{i}-token-0123456789" for i in range(PEOPLE)]


@dataclass
class Tally:
    waits: list[float] = field(default_factory=list)  # seconds from asking to the first token
    served: int = 0
    refused: int = 0
    batch_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def ask(url: str, token: str, words: int) -> float | None:
    """Stream one chat; return the seconds to its first token, or None if it was refused."""
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": " ".join(["w"] * words)}]}
    started = time.monotonic()
    with requests.post(url + "/api/chat", json=body, headers={"Authorization": f"Bearer {token}"}, stream=True,
                       timeout=600) as answer:
        if answer.status_code != 200:
            return None
        first = None
        for line in answer.iter_lines():
            if first is None and json.loads(line).get("message", {}).get("content"):
                first = time.monotonic() - started
        return first


def drive(urls: list[str], batch_token: str, seconds: float) -> Tally:
    tally, stop = Tally(), time.monotonic() + seconds
    turn = itertools.cycle(urls)

    def batch() -> None:
        while time.monotonic() < stop:
            if ask(next(turn), batch_token, BATCH_WORDS) is not None:
                with tally.lock:
                    tally.batch_served += 1

    def person(token: str, offset: float) -> None:
        time.sleep(offset)
        while time.monotonic() < stop:
            asked = time.monotonic()
            wait = ask(next(turn), token, QUESTION_WORDS)
            with tally.lock:
                if wait is None:
                    tally.refused += 1
                else:
                    tally.served += 1
                    tally.waits.append(wait)
            time.sleep(max(0.0, asked + ASK_EVERY - time.monotonic()))

    threads = [threading.Thread(target=batch) for _ in range(BATCH_IN_FLIGHT)]
    threads += [threading.Thread(target=person, args=(t, 2.0 + i * ASK_EVERY / PEOPLE))
                for i, t in enumerate(PEOPLE_TOKENS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def utilisation(fakes: list[FakeOllama], since: float, until: float) -> float:
    """Slot-seconds the servers ran within the window, over the slots they have."""
    busy = 0.0
    for fake in fakes:
        for record in fake.scheduler.records():
            if record.started_at is None:
                continue
            end = record.finished_at or until
            busy += max(0.0, min(end, until) - max(record.started_at, since))
    return busy / (len(fakes) * SLOTS["num_parallel"] * (until - since))


def run(via_proxy: bool, batch_class: str, seconds: float) -> dict:
    fakes = [FakeOllama(**SLOTS).start() for _ in range(2)]
    for fake in fakes:
        fake.script("llama3.2", chunk_delay=TOKEN_SECONDS)
    try:
        with tempfile.TemporaryDirectory(prefix="ollama-proxy-sched-") as workdir:
            urls, batch_token, server = [f.url for f in fakes], "none", None
            if via_proxy:
                config = {"auth": {"generate_tokens": [{"name": f"person{i}", "token": t}
                                                       for i, t in enumerate(PEOPLE_TOKENS)]},
                          "service": {"base_url": fakes[0].url, "read_timeout": 600, **SLOTS},
                          "backends": [{"name": "gpu2", "type": "ollama", "base_url": fakes[1].url, **SLOTS}],
                          "scheduling": {"max_queued_per_principal": 64},
                          "logging": {"dir": str(Path(workdir) / "logs")}}
                server = ProxyServer(config, Path(workdir), workers=2).start()
                batch_token = create_key(server, "--name", "batch-job", "--class", batch_class)
                urls = [server.url]
            since = time.monotonic()
            tally = drive(urls, batch_token, seconds)
            until = time.monotonic()
            if server is not None:
                server.stop()
        waits = sorted(tally.waits)
        return {"first token p50 s": percentile(waits, 0.5), "first token p95 s": percentile(waits, 0.95),
                "first token max s": waits[-1] if waits else float("nan"), "questions served": tally.served,
                "questions refused": tally.refused, "batch answers": tally.batch_served,
                "slot use": utilisation(fakes, since, until)}
    finally:
        for fake in fakes:
            fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="how long each run lasts (default 45)")
    args = parser.parse_args()
    runs = {"straight to Ollama": run(False, "interactive", args.seconds),
            "proxy, batch key interactive": run(True, "interactive", args.seconds),
            "proxy, batch key in class batch": run(True, "batch", args.seconds)}
    metrics = list(next(iter(runs.values())))
    print(f"noisy neighbour: {BATCH_IN_FLIGHT} batch answers of 300 tokens in flight, {PEOPLE} people asking "
          f"30 tokens every {ASK_EVERY:g} s; 2 servers x {SLOTS['num_parallel']} slots, {TOKEN_SECONDS * 1e3:g} ms "
          f"a token, {args.seconds:g} s a run")
    print(f"{'':34}" + "".join(f"{name:>34}" for name in runs))
    for metric in metrics:
        cells = "".join(f"{_cell(metric, r[metric]):>34}" for r in runs.values())
        print(f"{metric:34}{cells}")


def _cell(metric: str, value) -> str:
    if metric == "slot use":
        return f"{value:.0%}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
