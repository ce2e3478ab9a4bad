"""What the scheduler adds to every request: ``python -m bench.overhead``.

The proxy's overhead figures (scenario 1 of ``bench.run``: c=1 added latency, c=16 throughput) with
``service.scheduling`` on and with it off, in alternating rounds against one fake upstream, beside the
same load sent straight to it. Each round starts a fresh proxy for each setting, warms it up, then
measures. Printed per round and as medians, with on/off ratios:

- c=1: latency p50 and what the proxy adds to the direct p50;
- c=16: requests a second, and the proxy processes' CPU a request (user and system time of the
  gunicorn tree over the run's requests: steadier than throughput on a shared machine);
- in one process (Flask's test client, the arbiter in it, no socket), the scheduler left out of every
  other block of 100 requests: CPU a request and Python function calls a request (counted by
  cProfile: the same on every run, so a change that adds work shows even where the clock cannot).
  The blocks alternate, so this is the steadiest of the figures on a shared machine.

With ``--against REVISION`` (the last commit before the scheduler, say, for "within 5 % of the
figures before it"), that commit is checked out in a temporary worktree and timed in one process
as well, in turns with the working tree: its column is the proxy as it was then, and *on / earlier*
what a request costs now, scheduled, against what it cost then.

Nothing ever waits: the fake upstream runs every request at once and the proxy is told it has
100,000 slots, so the figures are the cost of asking for a slot that is free.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.in_process import BODY
from bench.load import Job
from bench.measure import percentile, run
from bench.procstat import tree
from bench.servers import ROOT, TOKEN, fake_upstream, proxy, proxy_config

SETTINGS = ("off", "on")


def measure_server(port: int, parties: dict, seconds: float, token: str = TOKEN) -> dict[str, float]:
    """c=1 latency p50 (ms), then c=16 requests a second and the proxy's CPU a request (µs) if it is watched."""
    headers = {"Authorization": f"Bearer {token}"}
    single = run([Job(port, "/api/chat", BODY, headers=headers, connections=1, duration=seconds)], parties)
    many = run([Job(port, "/api/chat", BODY, headers=headers, connections=16, duration=seconds)], parties)
    figures = {"c=1 p50, ms": percentile(single.results.latencies, 0.5) * 1e3,
               "c=16 requests/s": many.results.completed / many.wall,
               "failed": single.results.failed + many.results.failed}
    if "proxy" in parties:
        figures["c=16 proxy CPU a request, µs"] = many.cpu["proxy"] / max(1, many.results.completed) * 1e6
    return figures


def write_config(workdir: Path, upstream_port: int, earlier: bool) -> Path:
    """Write the proxy's configuration; an earlier tree's without the settings it may not know yet."""
    config = proxy_config(f"http://127.0.0.1:{upstream_port}", workdir / "logs")
    if earlier:
        for name in ("num_parallel", "max_loaded_models"):
            config["service"].pop(name)
    path = workdir / ("earlier.yaml" if earlier else "config.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def in_process(tree: Path, config: Path, requests: int, toggle: bool) -> dict[str, dict[str, float]]:
    """Run ``bench.in_process`` on ``tree`` in a child process; its figures by setting."""
    argv = [sys.executable, "-m", "bench.in_process", "--tree", str(tree), "--config", str(config), "--token", TOKEN,
            "--requests", str(requests), *(["--toggle"] if toggle else [])]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the in-process run on {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def checkout(revision: str | None) -> Iterator[Path | None]:
    """Check ``revision`` out in a temporary worktree (nothing when None); remove it after."""
    if revision is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ollama-proxy-earlier-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


def table(rounds: list[dict[str, dict[str, float]]], earlier: str | None) -> str:
    """Return each figure per round and as the median of the rounds, with on/off (and on/earlier) ratios."""
    columns = ["direct", *(["earlier"] if earlier else []), *SETTINGS]
    metrics = list(dict.fromkeys(m for r in rounds for who in columns for m in r.get(who, {})))
    head = ["figure", "round", "direct", *([f"{earlier} (earlier)"] if earlier else []), "scheduling off",
            "scheduling on", "on / off", *(["on / earlier"] if earlier else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "--:|" * (len(head) - 2)]
    for metric in metrics:
        median = {who: {metric: statistics.median(r[who][metric] for r in rounds)}
                  for who in columns if all(metric in r.get(who, {}) for r in rounds)}
        for label, figures in [(str(n + 1), r) for n, r in enumerate(rounds)] + [("median", median)]:
            cells = {who: figures.get(who, {}).get(metric) for who in columns}
            text = ["-" if cells[w] is None else f"{cells[w]:,.2f}" if abs(cells[w]) < 100 else f"{cells[w]:,.0f}"
                    for w in columns]
            ratios = [_ratio(cells["on"], cells["off"]), *([_ratio(cells["on"], cells["earlier"])] if earlier else [])]
            lines.append(f"| {metric} | {label} | {' | '.join(text)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"×{value / base:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of off and on (the order alternates)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--requests", type=int, default=4000, help="requests timed in one process, each setting")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the proxy")
    parser.add_argument("--against", metavar="REVISION",
                        help="also time an earlier commit in one process (e.g. the last one before the scheduler)")
    args = parser.parse_args(argv)
    rounds = []
    with fake_upstream(20.0) as upstream, checkout(args.against) as earlier, \
            tempfile.TemporaryDirectory(prefix="ollama-proxy-overhead-") as workdir:
        configs = {"now": write_config(Path(workdir), upstream.port, earlier=False),
                   "earlier": write_config(Path(workdir), upstream.port, earlier=True)}
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
            trees = [("now", ROOT), *([("earlier", earlier)] if earlier else [])]
            for which, source in trees if number % 2 == 0 else reversed(trees):
                for setting, measured in in_process(source, configs[which], args.requests, which == "now").items():
                    figures.setdefault("earlier" if which == "earlier" else setting, {}).update(measured)
            rounds.append(figures)
    print(table(rounds, args.against))


if __name__ == "__main__":
    main()
