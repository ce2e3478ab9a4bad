"""Run every benchmark scenario, straight to the fake upstream and through the proxy: ``python -m bench.run``.

Prints one table: each figure measured direct, through the bare design
(``bench/bare.py``: Flask, ``requests`` and gunicorn's gevent worker alone) and
via the proxy in the same run, what the proxy adds over direct and over the
bare design (or the ratio), and whether the issue's target is met: against a direct connection, and the
same bound counted from the bare design (over it, or its share of the bare design's requests/s).
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

from bench import procstat, translation
from bench.bare import bare_proxy
from bench.load import Job, raise_open_files_limit
from bench.measure import Run, percentile, run
from bench.servers import ROOT, TOKEN, fake_upstream, proxy

CHAT = [{"role": "user", "content": "Why is the sky blue?"}]
MS, MB = 1e3, 1024 ** 2
STATS = {"p50": 0.5, "p99": 0.99, "max": 1.0}  # the fraction of the results below each statistic
THINK_RATE = 20.0  # requests a second on one connection, the server idle between them: a person's pace
# The first-chunk request of each surface: one chunk (num_predict 1), streamed.
SURFACES = {
    "native /api/chat": ("/api/chat", {"model": "bench", "messages": CHAT, "options": {"num_predict": 1}}),
    "OpenAI /v1/chat/completions": ("/v1/chat/completions",
                                    {"model": "bench", "messages": CHAT, "max_tokens": 1, "stream": True}),
    "Anthropic /v1/messages": ("/v1/messages", {"model": "bench", "messages": CHAT, "max_tokens": 1,
                                                "stream": True}),
    "Responses /v1/responses": ("/v1/responses", {"model": "bench", "input": "Why is the sky blue?",
                                                  "max_output_tokens": 1, "stream": True}),
}


@dataclass
class Row:
    """One line of the table. ``target`` is (column, "≤" or "≥", limit): met when that column is so.

    ``bare_target`` is the same kind of bound counted from the bare design: ("over bare", "≤", ms) on what the
    proxy adds over it, or ("× bare", "≥", share) on the proxy's figure over the bare design's.
    """

    scenario: str
    metric: str
    direct: float | None
    proxy: float | None
    compare: str = "added"  # "added", "ratio" or "" (nothing to compare)
    target: tuple[str, str, float] | None = None
    bare: float | None = None  # through the bare design
    bare_target: tuple[str, str, float] | None = None

    def over_bare(self) -> float | None:
        if self.bare is None or self.proxy is None or self.compare != "added":
            return None
        return self.proxy - self.bare

    def added(self) -> float | None:
        if self.direct is None or self.proxy is None or self.compare != "added":
            return None
        return self.proxy - self.direct

    def ratio(self) -> float | None:
        if self.direct is None or self.proxy is None or not self.direct or not self.compare:
            return None
        return self.proxy / self.direct

    def verdict(self) -> str:
        """Say whether each target is met ("" when the row has none)."""
        values = {"added": self.added(), "proxy": self.proxy, "over bare": self.over_bare(),
                  "× bare": self.proxy / self.bare if self.proxy is not None and self.bare else None}
        verdicts = []
        for column, sign, limit in filter(None, (self.target, self.bare_target)):
            value = values[column]
            met = value is not None and not math.isnan(value) and (value <= limit if sign == "≤" else value >= limit)
            verdicts.append(f"{column} {sign} {limit:g}: {'met' if met else 'NOT MET'}")
        return "; ".join(verdicts)


@dataclass
class Setup:
    """The servers under test and how hard to drive them."""

    upstream_port: int
    bare_port: int
    proxy_port: int
    parties: dict[str, list[int]]
    quick: bool
    drivers: int
    streams: int
    stream_seconds: float
    rate: float

    def job(self, port: int, path: str, body: dict, **options) -> Job:
        return Job(port, path, body, headers={"Authorization": f"Bearer {TOKEN}"}, **options)

    def each(self, path: str, body: dict, **options) -> tuple[Run, Run, Run]:
        """Run the same load straight to the upstream, through the bare design, then through the proxy."""
        runs = []
        for port in (self.upstream_port, self.bare_port, self.proxy_port):
            runs.append(run([self.job(port, path, body, **options)], self.parties))
            time.sleep(0.5)
        return tuple(runs)


def latency_rows(setup: Setup) -> list[Row]:
    """Scenario 1: whole (non-stream) chat answers, back to back at concurrency 1, 16 and 64, then one connection
    at a person's pace (``THINK_RATE``), the proxy idle between requests."""
    seconds = 2.0 if setup.quick else 10.0
    body = {"model": "bench", "messages": CHAT, "stream": False}
    rows, failed = [], [0, 0, 0]  # direct, bare, via
    for concurrency in (1, 16, 64):
        direct, bare, via = setup.each("/api/chat", body, connections=concurrency, duration=seconds)
        name = f"1. request latency, c={concurrency}"
        limits = (1.0, 5.0) if concurrency == 1 else (None, None)
        rows += percentile_rows(name, (direct, bare, via), "latencies", "latency {stat}, ms",
                                {"p50": limits[0], "p99": limits[1]})
        if concurrency > 1:
            direct_rate, bare_rate, proxy_rate = (one.results.completed / one.wall for one in (direct, bare, via))
            rows.append(Row(name, "requests/s", direct_rate, proxy_rate, "ratio", bare=bare_rate,
                            target=("proxy", "≥", 1500) if concurrency == 16 else None,
                            bare_target=("× bare", "≥", 0.9) if concurrency == 16 else None))
        failed = [count + one.results.failed for count, one in zip(failed, (direct, bare, via), strict=True)]
    cost = cost_rows("1. request latency, c=64", direct, bare, via)
    runs = setup.each("/api/chat", body, connections=1, duration=2 * seconds, pace=1 / THINK_RATE)
    rows += percentile_rows(f"1. request latency, think time ({THINK_RATE:g} req/s on one connection)", runs,
                            "latencies", "latency {stat}, ms", {"p50": 1.0, "p99": None})
    failed = [count + one.results.failed for count, one in zip(failed, runs, strict=True)]
    rows.append(Row("1. request latency", "failed requests, all", failed[0], failed[2], "", bare=failed[1],
                    target=("proxy", "≤", 0)))
    return rows + cost


def percentile_rows(name: str, runs: tuple[Run, Run, Run], field: str, metric: str,
                    limits: dict[str, float | None]) -> list[Row]:
    """Return a row, in ms, for each statistic of ``limits`` ("p50", "p99", "max") of the results field ``field``
    of one load run direct, bare and via the proxy; ``metric`` names it (``{stat}``), its limit is a target on
    what the proxy adds, over direct and over the bare design (None: no target)."""
    rows = []
    for stat, limit in limits.items():
        direct, bare, via = (percentile(getattr(one.results, field), STATS[stat]) * MS for one in runs)
        rows.append(Row(name, metric.format(stat=stat), direct, via, bare=bare,
                        target=("added", "≤", limit) if limit else None,
                        bare_target=("over bare", "≤", limit) if limit else None))
    return rows


def cost_rows(name: str, direct: Run, bare: Run, via: Run) -> list[Row]:
    """Return each party's CPU during the runs, in % of one core (200 % is both cores of two); the bare design's
    own CPU stands in its column on the proxy's line."""
    return [Row(name, f"{party} CPU, % of a core", None if party == "proxy" else direct.cores(party) * 100,
                via.cores(party) * 100, "", bare=bare.cores("bare" if party == "proxy" else party) * 100)
            for party in ("proxy", "upstream", "driver", "others")]


def stream_rows(setup: Setup) -> list[Row]:
    """Scenario 2: many long streams at once; every chunk's delay, the proxy's memory and CPU."""
    count = int(setup.rate * setup.stream_seconds)
    body = {"model": "bench", "messages": CHAT, "options": {"num_predict": count}}
    share = -(-setup.streams // setup.drivers)
    options = dict(duration=setup.stream_seconds, repeat=False, ramp=setup.stream_seconds / 6, stamps=count)
    runs = []
    for port, party in ((setup.upstream_port, "upstream"), (setup.bare_port, "bare"), (setup.proxy_port, "proxy")):
        jobs = [setup.job(port, "/api/chat", body, connections=min(share, setup.streams - i * share), **options)
                for i in range(setup.drivers)]
        runs.append(run(jobs, setup.parties, rss_of=party))
        time.sleep(0.5)
    direct, bare, via = runs = tuple(runs)
    name = f"2. {setup.streams} streams × {setup.rate:g}/s × {setup.stream_seconds:g}s"
    per_chunk = [run.cpu[party] / max(1, len(run.results.delays)) * 1e6
                 for run, party in ((direct, "upstream"), (via, "proxy"), (bare, "bare"))]
    return [Row(name, "streams complete", direct.results.completed, via.results.completed, "",
                bare=bare.results.completed, target=("proxy", "≥", setup.streams)),
            *percentile_rows(name, runs, "delays", "chunk delay {stat} (all chunks), ms",
                             {"p50": None, "p99": 5.0, "max": None}),
            *percentile_rows(name, runs, "steady_delays", "chunk delay {stat} (all streams open), ms",
                             {"p50": None, "p99": 5.0}),
            *percentile_rows(name, runs, "first_chunks",
                             "time to first chunk {stat} (opening beside the others), ms", {"p50": None, "p99": None}),
            Row(name, "proxy RSS max, MB", None, via.proxy_rss_max / MB, "", bare=bare.proxy_rss_max / MB,
                target=("proxy", "≤", 300)),
            Row(name, "CPU per chunk (direct: the upstream), µs", *per_chunk[:2], "", bare=per_chunk[2]),
            *cost_rows(name, direct, bare, via)]


def first_chunk_rows(setup: Setup) -> list[Row]:
    """Scenario 3: time to the first chunk of a stream, one request at a time, on each surface."""
    seconds = 2.0 if setup.quick else 5.0
    path, body = SURFACES["native /api/chat"]
    direct, bare = (run([setup.job(port, path, body, duration=seconds, stamps=1)], setup.parties)
                    for port in (setup.upstream_port, setup.bare_port))
    rows = []
    for surface, (path, body) in SURFACES.items():
        via = run([setup.job(setup.proxy_port, path, body, duration=seconds, stamps=1)], setup.parties)
        name = f"3. first chunk, {surface}"
        native = surface.startswith("native")
        rows += percentile_rows(name, (direct, bare, via), "first_chunks", "time to first chunk {stat}, ms",
                                {"p50": 2.0 if native else None, "p99": None})
        if via.results.failed:
            rows.append(Row(name, "failed requests", direct.results.failed, via.results.failed, "",
                            target=("proxy", "≤", 0)))
    return rows


def translation_rows(setup: Setup) -> list[Row]:
    """Scenario 4: CPU per chunk of each surface's stream handling, timed in this process."""
    costs = translation.measure(2.0 if setup.quick else 10.0)
    return [Row("4. CPU per chunk (in process)", f"{surface}, µs", None, cost, "") for surface, cost in costs.items()]


def number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    """Return the rows as a Markdown table."""
    lines = ["| scenario | metric | direct | bare design | via proxy | added | added over bare | ratio | target |",
             "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for row in rows:
        ratio = row.ratio()
        lines.append(f"| {row.scenario} | {row.metric} | {number(row.direct)} | {number(row.bare)} | "
                     f"{number(row.proxy)} | {number(row.added())} | {number(row.over_bare())} | "
                     f"{'-' if ratio is None else f'×{ratio:.2f}'} | {row.verdict()} |")
    return "\n".join(lines)


def code_version() -> str:
    """Return the commit under test, and whether the working tree differs from it."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return f"{git('rev-parse', '--short', 'HEAD')}{' + uncommitted changes' if git('status', '--porcelain') else ''}"


def header(args: argparse.Namespace) -> str:
    """Describe the machine, the date and the settings of this run."""
    facts = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **procstat.machine(),
             "python": platform.python_version(), "code": code_version(), "proxy workers": str(args.workers),
             "driver processes": str(args.drivers), "mode": "quick" if args.quick else "full"}
    return "\n".join(f"- {name}: {value}" for name, value in facts.items())


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line; fill in the stream defaults of a full or a quick run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short runs, 100 streams for 5 s")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the proxy")
    parser.add_argument("--drivers", type=int, default=1, help="load driver processes for the stream scenario")
    parser.add_argument("--streams", type=int, help="concurrent streams (default 1000, quick 100)")
    parser.add_argument("--stream-seconds", type=float, help="length of each stream (default 30, quick 5)")
    parser.add_argument("--rate", type=float, default=20.0, help="chunks a second in each stream")
    parser.add_argument("--only", help="run only these scenarios, e.g. 13 (4 needs no servers)")
    args = parser.parse_args(argv)
    args.streams = args.streams or (100 if args.quick else 1000)
    args.stream_seconds = args.stream_seconds or (5.0 if args.quick else 30.0)
    return args


def main(argv: list[str] | None = None) -> None:
    """Start both servers, run the chosen scenarios, print the machine and the table."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_open_files_limit()  # inherited by both servers: 1,000 streams need more than 1,024 sockets
    print(header(args), flush=True)
    scenarios = {"1": latency_rows, "2": stream_rows, "3": first_chunk_rows, "4": translation_rows}
    chosen = [key for key in scenarios if not args.only or key in args.only]
    rows = []
    with (fake_upstream(args.rate) as upstream, bare_proxy(upstream.port, args.workers) as bare,
          proxy(upstream.port, args.workers) as server):
        parties = {"proxy": procstat.tree(server.process.pid), "upstream": [upstream.pid],
                   "bare": procstat.tree(bare.pid)}
        setup = Setup(upstream.port, bare.port, server.port, parties, args.quick, args.drivers, args.streams,
                      args.stream_seconds, args.rate)
        for key in chosen:
            print(f"running scenario {key} …", file=sys.stderr, flush=True)
            rows += scenarios[key](setup)
    print(table(rows))


if __name__ == "__main__":
    main()
