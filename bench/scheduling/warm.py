"""Warm or cold: eight equal requests at once, the model loaded on one of two servers, loads take 2 s.

One request warms a server first (straight: the first server; through the proxy: wherever the
proxy sends it, which also shows the proxy the load time). Then eight requests go at once:
straight, round-robin as a client spreads them, and all to the warm server as a client that
knows where the model is would; through the proxy, where it places them. Each run is set beside
the best assignment of eight requests to the two servers (brute force, each server's slots
first come first served, the cold server ready after one load), computed with the slot time the
fake measured in that run and the fake's load time.
"""

from __future__ import annotations

import statistics
import threading

from bench.scheduling.client import Answer, Tally, ask, run_all
from bench.scheduling.measures import best_assignment
from bench.scheduling.rig import Rig, Servers, rig
from bench.scheduling.table import Column, Target, print_scenario, show

SERVERS = Servers(count=2, num_parallel=2, max_loaded_models=1, token_seconds=0.02, load_seconds=2.0)
REQUESTS, ANSWER_TOKENS = 8, 50
WARM_UP = "warm-up"
ROUND_ROBIN, ALL_WARM, PROXY = "straight, round-robin", "straight, all to the warm server", "proxy"
TARGET_OVER_BEST = 1.05


def main(seconds: float) -> list[Target]:
    columns, over_best = {}, {}
    for name in (ROUND_ROBIN, ALL_WARM, PROXY):
        with rig(SERVERS, via_proxy=name == PROXY, people=(WARM_UP, "people")) as where:
            ask(where.url(), where.token(WARM_UP), WARM_UP, 0, ANSWER_TOKENS)
            warm = where.server_of(f"{WARM_UP}#0")
            urls = [where.fakes[warm].url] * REQUESTS if name == ALL_WARM else [where.url() for _ in range(REQUESTS)]
            columns[name], over_best[name] = measure(where, warm, burst(where, urls))
    about = (f"{REQUESTS} requests of {ANSWER_TOKENS} tokens at once, {SERVERS.token_seconds * 1e3:g} ms a token; "
             f"{SERVERS.count} servers x {SERVERS.num_parallel} slots, the model loaded on one, "
             f"{SERVERS.load_seconds:g} s a load")
    return print_scenario("warm or cold", about, columns,
                   [Target("mean completion <= best x 1.05", PROXY, over_best[PROXY], TARGET_OVER_BEST)])


def burst(where: Rig, urls: list[str]) -> list[Answer]:
    """Send one request to each url at the same moment; return the answers."""
    tally, ready = Tally(), threading.Barrier(len(urls))

    def one(number: int, url: str) -> None:
        ready.wait()
        tally.add(ask(url, where.token("people"), "people", number, ANSWER_TOKENS))

    run_all(*(lambda n=n, url=url: one(n, url) for n, url in enumerate(urls)))
    return tally.answers


def measure(where: Rig, warm: int, answers: list[Answer]) -> tuple[Column, float]:
    """Return the run's rows, and its mean completion over the best assignment's."""
    completions = [a.finished_at - a.asked_at if a.served else float("nan") for a in answers]
    placed = [where.server_of(a.label) for a in answers]
    records = [r for a in answers for r in where.records().get(a.label, ()) if r.finished_at and r.started_at]
    slot_seconds = statistics.median(r.finished_at - r.started_at for r in records)
    servers = [(SERVERS.num_parallel, 0.0 if index == warm else SERVERS.load_seconds)
               for index in range(SERVERS.count)]
    best_mean, best_max, best_counts = best_assignment(REQUESTS, slot_seconds, servers)
    mean = statistics.fmean(completions)
    cold = 1 - warm
    return {
        "placed warm / cold": f"{placed.count(warm)} / {placed.count(cold)}",
        "completion mean / max": f"{show(mean, 's')} / {show(max(completions), 's')}",
        "best assignment mean / max": f"{show(best_mean, 's')} / {show(best_max, 's')}",
        "best assignment warm / cold": f"{best_counts[warm]} / {best_counts[cold]}",
        "slot time measured": show(slot_seconds, "s"),
        "mean over best": f"{mean / best_mean:.3f}",
        "loads on the cold server": str(where.fakes[cold].stats().loads),
    }, mean / best_mean
