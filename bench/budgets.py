"""What a budget costs a request: ``python -m bench.budgets [--rounds N] [--seconds S]``.

One proxy (gunicorn, two gevent workers, the embedded SQLite store) in front of the fake upstream,
and two managed keys on it: ``plain``, held by no budget, and ``budgeted``, in a team with a token
budget and a GPU-second budget of its own and a token budget on the key (three budgets, none ever
spent). In alternating rounds each key sends the same load: c=1 (latency p50) and c=16 (requests a
second, and the proxy's CPU a request); the same load straight to the upstream is the baseline.
Printed per round and as medians, with budgeted/plain ratios.

Far from its budgets' end (here, always) a worker leases a share of each and admits the budgeted key's
requests against it without the store, adding their charges as the lease ends (``access.leases``).
With ``--lease-seconds 0`` each budgeted request reads what its budgets spent before it runs (one
SELECT) and adds its spending as it closes (one upsert transaction): with SQLite every worker's
charge takes the one write lock.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.overhead import measure_server
from bench.procstat import tree
from bench.servers import fake_upstream, proxy_config
from tests.e2e.command import cli, create_key
from tests.e2e.server import ProxyServer

KEYS = ("plain", "budgeted")


def _keys(server: ProxyServer) -> dict[str, str]:
    """Make the two keys, the budgeted one in a team: three budgets, far from spent."""
    done = cli(server, "teams", "create", "lab")
    assert done.returncode == 0, done.stderr
    secrets = {"plain": create_key(server, "--name", "plain"),
               "budgeted": create_key(server, "--name", "budgeted", "--team", "lab")}
    for holder, unit, amount in (("--team lab", "--tokens", "1e12"), ("--team lab", "--gpu-seconds", "1e9"),
                                 ("--key budgeted", "--tokens", "1e12")):
        done = cli(server, "budgets", "set", *holder.split(), "--period", "month", unit, amount)
        assert done.returncode == 0, done.stderr
    return secrets


def _table(rows: dict[str, list[float]]) -> str:
    lines = [f"{'':34}{'straight':>12}{'plain':>12}{'budgeted':>12}{'budgeted/plain':>16}"]
    for name, (direct, plain, budgeted) in rows.items():
        ratio = budgeted / plain if plain else float("nan")
        direct_text = "" if direct is None else f"{direct:12.2f}"
        lines.append(f"{name:34}{direct_text:>12}{plain:12.2f}{budgeted:12.2f}{ratio:16.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds each load runs (default 6)")
    parser.add_argument("--lease-seconds", type=float, default=None,
                        help="budgets.lease_seconds (default: the setting's; 0: every request reads and charges)")
    args = parser.parse_args()
    with fake_upstream(20.0) as upstream, tempfile.TemporaryDirectory(prefix="bench-budgets-") as workdir:
        config = proxy_config(f"http://127.0.0.1:{upstream.port}", Path(workdir) / "logs")
        if args.lease_seconds is not None:
            config["budgets"] = {"lease_seconds": args.lease_seconds}
        server = ProxyServer(config, Path(workdir), workers=2).start()
        try:
            secrets = _keys(server)
            parties = {"proxy": tree(server.process.pid)}
            for name in KEYS:  # warm up: connections, caches, the budgets' first read
                measure_server(server.port, parties, 1.0, secrets[name])
            rounds = []
            for number in range(args.rounds):
                order = KEYS if number % 2 == 0 else tuple(reversed(KEYS))
                figures = {name: measure_server(server.port, parties, args.seconds, secrets[name]) for name in order}
                figures["straight"] = measure_server(upstream.port, {}, args.seconds)
                rounds.append(figures)
                print(f"round {number + 1}: " + "; ".join(
                    f"{name} c=1 {f['c=1 p50, ms']:.2f} ms, c=16 {f['c=16 requests/s']:.0f}/s"
                    for name, f in figures.items()), flush=True)
        finally:
            server.stop()
    median = {name: {figure: statistics.median(r[name][figure] for r in rounds) for figure in rounds[0][name]}
              for name in (*KEYS, "straight")}
    print(f"\nmedians of {args.rounds} rounds, {args.seconds:g} s each load (failed requests: "
          f"{sum(median[name]['failed'] for name in median):.0f})")
    print(_table({
        "c=1 latency p50, ms": [median["straight"]["c=1 p50, ms"], median["plain"]["c=1 p50, ms"],
                                median["budgeted"]["c=1 p50, ms"]],
        "c=16 requests/s": [median["straight"]["c=16 requests/s"], median["plain"]["c=16 requests/s"],
                            median["budgeted"]["c=16 requests/s"]],
        "c=16 proxy CPU a request, µs": [None, median["plain"]["c=16 proxy CPU a request, µs"],
                                         median["budgeted"]["c=16 proxy CPU a request, µs"]],
    }))


if __name__ == "__main__":
    main()
