"""What the scheduler adds to every request: ``python -m bench.overhead``.

The proxy's overhead figures (scenario 1 of ``bench.run``: c=1 added latency, c=16 throughput) with
``service.scheduling`` on and with it off, in alternating rounds against one fake upstream, beside the
same load sent straight to it. Each round starts a fresh proxy for each setting, warms it up, then
measures. Printed per round and as medians, with on/off ratios:

- c=1: latency p50 and what the proxy adds to the direct p50;
- c=16: requests a second, and the proxy processes' CPU a request (user and system time of the
  gunicorn tree over the run's requests: steadier than throughput on a shared machine);
- in one process (Flask's test client, the arbiter in it, no socket): CPU a request and Python
  function calls a request (counted by cProfile: the same on every run, so a change that adds work
  shows even where the clock cannot).

Nothing ever waits: the fake upstream runs every request at once and the proxy is told it has
100,000 slots, so the figures are the cost of asking for a slot that is free.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.load import Job
from bench.measure import percentile, run
from bench.procstat import tree
from bench.servers import ROOT, TOKEN, fake_upstream, proxy, proxy_config

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "stream": False}
SETTINGS = ("off", "on")


def measure_server(port: int, parties: dict, seconds: float) -> dict[str, float]:
    """c=1 latency p50 (ms), then c=16 requests a second and the proxy's CPU a request (µs) if it is watched."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    single = run([Job(port, "/api/chat", BODY, headers=headers, connections=1, duration=seconds)], parties)
    many = run([Job(port, "/api/chat", BODY, headers=headers, connections=16, duration=seconds)], parties)
    figures = {"c=1 p50, ms": percentile(single.results.latencies, 0.5) * 1e3,
               "c=16 requests/s": many.results.completed / many.wall,
               "failed": single.results.failed + many.results.failed}
    if "proxy" in parties:
        figures["c=16 proxy CPU a request, µs"] = many.cpu["proxy"] / max(1, many.results.completed) * 1e6
    return figures


def in_process(upstream_port: int, scheduling: str, requests: int) -> dict[str, float]:
    """Run ``requests`` chats through the app in a child process; its CPU and function calls a request."""
    argv = [sys.executable, "-m", "bench.overhead", "--in-process", scheduling, "--upstream-port", str(upstream_port),
            "--requests", str(requests)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def in_process_child(upstream_port: int, scheduling: str, requests: int) -> None:
    """The child's side: gevent-patched like a worker, the app built from a config, timed, then profiled."""
    from gevent import monkey
    monkey.patch_all()
    import cProfile
    import pstats

    workdir = Path(tempfile.mkdtemp(prefix="ollama-proxy-overhead-"))
    config = proxy_config(f"http://127.0.0.1:{upstream_port}", workdir / "logs")
    config["service"]["scheduling"] = scheduling == "on"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    os.environ["OLLAMA_PROXY_CONFIG"] = str(workdir / "config.yaml")
    from ollama_proxy.app import create_app

    client = create_app().test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def chat() -> None:
        answer = client.post("/api/chat", json=BODY, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"the proxy answered {answer.status_code}: {answer.data[:200]!r}")
    for _ in range(min(300, requests)):
        chat()
    started = time.process_time()
    for _ in range(requests):
        chat()
    cpu = (time.process_time() - started) / requests * 1e6
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(200):
        chat()
    profile.disable()
    calls = pstats.Stats(profile).total_calls / 200
    print(json.dumps({"in one process, CPU a request, µs": cpu, "in one process, function calls a request": calls}))


def table(rounds: list[dict[str, dict[str, float]]]) -> str:
    """Return each figure per round and as the median of the rounds, direct, off and on, and on/off."""
    metrics = [m for m in rounds[0]["on"]]
    lines = ["| figure | round | direct | scheduling off | scheduling on | on / off |", "|---|---|--:|--:|--:|--:|"]
    for metric in metrics:
        rows = [(str(n + 1), r) for n, r in enumerate(rounds)]
        median = {who: {metric: statistics.median(r[who][metric] for r in rounds if metric in r[who])}
                  for who in ("direct", *SETTINGS) if all(metric in r[who] for r in rounds)}
        for label, figures in rows + [("median", median)]:
            cells = [figures.get(who, {}).get(metric) for who in ("direct", *SETTINGS)]
            ratio = cells[2] / cells[1] if cells[1] and cells[2] is not None else None
            text = ["-" if c is None else f"{c:,.2f}" if abs(c) < 100 else f"{c:,.0f}" for c in cells]
            lines.append(f"| {metric} | {label} | {' | '.join(text)} | {'-' if ratio is None else f'×{ratio:.3f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of off and on (the order alternates)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--requests", type=int, default=3000, help="requests timed in one process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the proxy")
    parser.add_argument("--in-process", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        in_process_child(args.upstream_port, args.in_process, args.requests)
        return
    rounds = []
    with fake_upstream(20.0) as upstream:
        for number in range(args.rounds):
            print(f"round {number + 1} of {args.rounds} …", file=sys.stderr, flush=True)
            figures = {"direct": measure_server(upstream.port, {"upstream": [upstream.pid]}, args.seconds)}
            for setting in SETTINGS if number % 2 == 0 else reversed(SETTINGS):
                env = {"OLLAMA_PROXY_SCHEDULING": "true" if setting == "on" else "false"}
                with proxy(upstream.port, args.workers, env=env) as server:
                    parties = {"proxy": tree(server.process.pid)}
                    measure_server(server.port, parties, 1.0)  # warm up: connections, caches, the arbiter
                    figures[setting] = measure_server(server.port, parties, args.seconds)
                figures[setting]["c=1 added p50, ms"] = (figures[setting]["c=1 p50, ms"]
                                                         - figures["direct"]["c=1 p50, ms"])
                figures[setting].update(in_process(upstream.port, setting, args.requests))
            rounds.append(figures)
    print(table(rounds))


if __name__ == "__main__":
    main()
