"""Thrash: three clients ask one model for num_ctx 2048, 8192 and nothing, back to back, on one server.

Ollama reloads a model whenever a request's load options differ from the loaded runner's, so
straight to the server the three clients take turns reloading it. The proxy sends one value per
model and server: at most one reload (to the largest asked) is the target. Reloads are the fake's
count of loads that replaced a runner of the same model started with other options.
"""

from __future__ import annotations

import itertools
import time

from bench.scheduling.client import Tally, ask, run_all
from bench.scheduling.rig import Rig, Servers, rig
from bench.scheduling.table import Column, Target, print_scenario

SERVERS = Servers(count=1, num_parallel=2, max_loaded_models=1, token_seconds=0.02, load_seconds=1.0)
QUESTION_TOKENS = 30
CLIENTS = {"ctx-2048": {"num_ctx": 2048}, "ctx-8192": {"num_ctx": 8192}, "ctx-unset": None}
STRAIGHT, PROXY = "straight to Ollama", "proxy"
SHARE_OF_SECONDS = 1 / 3  # of --seconds: reloads show within seconds


def main(seconds: float) -> list[Target]:
    seconds *= SHARE_OF_SECONDS
    columns, reloads = {}, {}
    for name, via_proxy in ((STRAIGHT, False), (PROXY, True)):
        with rig(SERVERS, via_proxy=via_proxy, people=tuple(CLIENTS)) as where:
            tally, took = drive(where, seconds)
            columns[name] = measure(where, tally, took)
            reloads[name] = where.fakes[0].stats().reloads
    about = (f"{len(CLIENTS)} clients asking {QUESTION_TOKENS} tokens back to back with num_ctx 2048, 8192 and "
             f"unset, for {seconds:g} s; 1 server x {SERVERS.num_parallel} slots, one model loaded at a time, "
             f"{SERVERS.load_seconds:g} s a load")
    return print_scenario("thrash", about, columns, [Target("reloads <= 1", PROXY, reloads[PROXY], 1)])


def drive(where: Rig, seconds: float) -> tuple[Tally, float]:
    """Have each client ask back to back for seconds; return the answers and how long the run took."""
    tally, began = Tally(), time.monotonic()
    stop = began + seconds

    def client(name: str) -> None:
        for number in itertools.count():
            if time.monotonic() >= stop:
                return
            tally.add(ask(where.url(), where.token(name), name, number, QUESTION_TOKENS, options=CLIENTS[name]))

    run_all(*(lambda name=name: client(name) for name in CLIENTS))
    return tally, time.monotonic() - began


def measure(where: Rig, tally: Tally, took: float) -> Column:
    stats = where.fakes[0].stats()
    served = [sum(a.served for a in tally.of(name)) for name in CLIENTS]
    contexts = where.fakes[0].contexts_loaded()
    return {
        "reloads": str(stats.reloads),
        "loads": str(stats.loads),
        "answers served (" + " / ".join(CLIENTS) + ")": " / ".join(map(str, served)),
        "answers a second": f"{sum(served) / took:.2f}",
        "refused": str(sum(a.refused for a in tally.answers)),
        "num_ctx loaded at the end": ", ".join(map(str, contexts)) or "-",
    }
