"""Faults during the noisy neighbour: what each does to the requests, the slots and the people's wait.

``python -m bench.faults [--seconds 24] [--only NAME]``

Each run is the noisy neighbour's load (bench/scheduling/noisy.py: a batch job keeping 24 long
answers in flight, four people asking short questions every 3 s) through the real proxy in front
of two fake Ollama servers of two slots each, and one fault striking a third of the way in. One
instance of three gevent workers, or two instances of two sharing a real Redis. Printed for each:

- hung: requests not ended within ``scheduling.max_wait`` + 5 s of asking (the proxy's bound);
- sent beyond a slot: requests that waited in a fake's own queue (the proxy sent a server more
  than it runs; while Redis is away each instance schedules alone, and this may happen);
- slots leaked: slots the scheduler still counts busy once every request ended;
- seconds to recover: from the fault until every slot runs a request again (the job keeps more
  in flight than there are slots, so all run whenever nothing is wrong);
- people's wait p95 (asking until a fake started the question) and questions served, beside the
  same load with no fault.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.scheduling.client import Tally
from bench.scheduling.measures import percentiles
from bench.scheduling.noisy import LOAD, waits
from bench.scheduling.rig import MODEL_SCRIPT, Rig, Servers
from bench.scheduling.workload import BATCH_JOB, drive
from tests.e2e import processes
from tests.e2e.chaos import metric_sum, over_grants
from tests.e2e.conftest import SCRAPE
from tests.e2e.server import ProxyServer, start_server, wait_for
from tests.fakes.ollama import FakeOllama
from tests.services.redis import RedisServer

SERVERS = Servers(count=2, num_parallel=2, token_seconds=0.02)
MAX_WAIT = 120.0
LEADER = "ollama-proxy:scheduler:leader"


@dataclass
class Setup:
    """What a fault strikes: the proxies (and the Redis they share), in front of the fakes."""

    fakes: list[FakeOllama]
    proxies: list[ProxyServer]
    redis: RedisServer | None = None

    def arbiter(self) -> int:
        """The pid of the worker that decides now."""
        if self.redis is None:
            master = self.proxies[0].process.pid
            assert wait_for(lambda: processes.arbiter(master) is not None, 10)
            return processes.arbiter(master)
        assert wait_for(lambda: redis.Redis.from_url(self.redis.url).get(LEADER) is not None, 15)
        return int(redis.Redis.from_url(self.redis.url).get(LEADER).decode().split("/")[1])


def _kill_arbiter(setup: Setup) -> None:
    os.kill(setup.arbiter(), signal.SIGKILL)


def _reload(setup: Setup) -> None:
    setup.proxies[0].signal(signal.SIGHUP)


def _stop_leader(setup: Setup) -> None:
    pid = setup.arbiter()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(5)
    os.kill(pid, signal.SIGCONT)


def _flush(setup: Setup) -> None:
    redis.Redis.from_url(setup.redis.url).flushall()


def _restart_redis(setup: Setup) -> None:
    setup.redis.halt()
    setup.redis.start()


def _redis_gone(setup: Setup) -> None:
    setup.redis.halt()
    time.sleep(8)
    setup.redis.start()


LOCAL = {"none (one instance, 3 workers)": None, "the arbiter's worker killed": _kill_arbiter,
         "a reload (SIGHUP)": _reload}
SHARED = {"none (two instances, Redis)": None, "the leader's worker stopped 5 s": _stop_leader,
          "the leader's worker killed": _kill_arbiter, "Redis FLUSHALL": _flush, "Redis restarted": _restart_redis,
          "Redis gone 8 s": _redis_gone}


def _config(fakes: list[FakeOllama], workdir: Path, redis_url: str | None) -> dict:
    settings = {"num_parallel": SERVERS.num_parallel, "max_loaded_models": SERVERS.max_loaded_models}
    people = [{"name": name, "token": f"{name}-token-0123456789"} for name in (*LOAD.names, BATCH_JOB)]
    config = {"auth": {"generate_tokens": people},
              "service": {"base_url": fakes[0].url, "read_timeout": 600, **settings},
              "backends": [{"name": f"gpu{i}", "type": "ollama", "base_url": fake.url, **settings}
                           for i, fake in enumerate(fakes[1:], start=2)],
              "scheduling": {"max_wait": MAX_WAIT},
              "metrics": {"tokens": [{"name": "prometheus", "token": SCRAPE}]},
              "logging": {"dir": str(workdir / "logs")}}
    if redis_url is not None:
        config["ratelimit"] = {"storage_url": redis_url}
    return config


@contextmanager
def setup(shared: bool) -> Iterator[Setup]:
    settings = {"num_parallel": SERVERS.num_parallel, "max_loaded_models": SERVERS.max_loaded_models}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="ollama-proxy-faults-") as workdir:
        fakes = [FakeOllama(**settings).start() for _ in range(SERVERS.count)]
        for fake in fakes:
            fake.script(MODEL_SCRIPT, chunk_delay=SERVERS.token_seconds)
            stack.callback(fake.stop)
        store = None
        if shared:
            store = RedisServer().start()
            stack.callback(store.stop)
        proxies = []
        for n in range(2 if shared else 1):
            config = _config(fakes, Path(workdir) / f"proxy{n}", store.url if store else None)
            proxy = start_server(ProxyServer(config, Path(workdir) / f"proxy{n}", workers=2 if shared else 3))
            stack.callback(proxy.stop)
            proxies.append(proxy)
        yield Setup(fakes, proxies, store)


def run(name: str, fault: Callable[[Setup], None] | None, shared: bool, seconds: float) -> dict:
    with setup(shared) as where:
        rig = Rig(where.fakes, [p.url for p in where.proxies],
                  {name: f"{name}-token-0123456789" for name in (*LOAD.names, BATCH_JOB)})
        result: dict = {}

        def load() -> None:
            result["tally"], result["window"] = drive(rig, LOAD, seconds)
        driving = threading.Thread(target=load, daemon=True)
        driving.start()
        time.sleep(seconds / 3)
        struck = time.monotonic()
        if fault is not None:
            fault(where)
        driving.join(seconds + MAX_WAIT + 10)
        still_asking = driving.is_alive()
        tally: Tally = result.get("tally", Tally())
        time.sleep(3)  # every answer ended: nothing should be counted as running now
        leaked = max(metric_sum(p.url, "ollama_proxy_scheduler_slots_busy") for p in where.proxies)
        records = rig.records()
    people = tally.of(*LOAD.names)
    hung = sum(a.ended_at - a.asked_at > MAX_WAIT + 5 for a in tally.answers) + still_asking
    return {"fault": name, "hung": hung, "beyond": len(over_grants(where.fakes)), "leaked": int(leaked),
            "recover": recovery(records, struck) if fault is not None else None,
            "wait p95": percentiles(waits(people, records))[1],
            "served": f"{sum(a.served for a in people)} / {len(people)}"}


def recovery(records: dict, struck: float, within: float = 20.0) -> float | None:
    """Seconds from the fault until every slot runs a request again, after the fault first left one idle.

    0 if no slot fell idle within ``within`` seconds; None if they never all ran again in the run.
    """
    spans = [(r.started_at, r.finished_at or r.left_at or float("inf")) for rs in records.values() for r in rs
             if r.started_at is not None]

    def running(moment: float) -> int:
        return sum(start <= moment < end for start, end in spans)
    ends = sorted(end for _, end in spans if struck <= end <= struck + within)
    dip = next((moment for moment in [struck, *ends] if running(moment) < SERVERS.slots), None)
    if dip is None:
        return 0.0
    back = next((start for start in sorted(start for start, _ in spans if start >= dip)
                 if running(start) >= SERVERS.slots), None)
    return None if back is None else back - struck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="how long people ask in each run (default 24)")
    parser.add_argument("--only", action="append", help="run only the faults whose name contains this")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    began = time.monotonic()
    print("| fault | hung | sent beyond a slot | slots leaked | seconds to recover | people's wait p95, s "
          "| people served |\n|---|--:|--:|--:|--:|--:|--:|")
    for shared, faults in ((False, LOCAL), (True, SHARED)):
        for name, fault in faults.items():
            if args.only and not any(part in name for part in args.only):
                continue
            row = run(name, fault, shared, args.seconds)
            recover = "-" if row["recover"] is None and fault is None else (
                "never" if row["recover"] is None else f"{row['recover']:.1f}")
            print(f"| {row['fault']} | {row['hung']} | {row['beyond']} | {row['leaked']} | {recover} "
                  f"| {row['wait p95']:.2f} | {row['served']} |", flush=True)
    print(f"\n{SERVERS.count} servers x {SERVERS.num_parallel} slots; the fault strikes {args.seconds / 3:g} s in; "
          f"people ask for {args.seconds:g} s (took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
