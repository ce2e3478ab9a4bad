"""Run the scheduling benchmark's scenarios and print each beside the same load sent straight to the servers."""

from __future__ import annotations

import argparse
import logging
import time

from bench.scheduling import SCENARIOS, real_agents
from bench.scheduling import __doc__ as about
from bench.scheduling.table import Target, print_spread


def main() -> None:
    parser = argparse.ArgumentParser(description=about.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="how long people ask in the noisy neighbour and abandonment runs; thrash runs a third "
                             "of it (default 45)")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append",
                        help="run only this scenario (may be given more than once)")
    parser.add_argument("--runs", type=int, default=1,
                        help="run the scenarios this many times over (in turn, so the host's drift falls on each "
                             "alike), then print each target's figure run by run: how far one run can be trusted")
    parser.add_argument("--real", action="store_true",
                        help="agents on the real engine: two llama-servers run as Ollama 0.33 runs them "
                             "(scripts/install-llama-server.sh installs it), conversations as --system-tokens, "
                             "--turn-tokens and --turns say")
    parser.add_argument("--system-tokens", type=int, default=2050, help="with --real: each system text's tokens")
    parser.add_argument("--turn-tokens", type=int, default=200, help="with --real: each question's tokens")
    parser.add_argument("--turns", type=int, default=4, help="with --real: turns of each conversation")
    parser.add_argument("--case", choices=list(real_agents.CASES), action="append",
                        help="with --real: run only this case (may be given more than once; default: all)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fakes' access lines
    began = time.monotonic()
    scenarios = dict(SCENARIOS)
    if args.real:
        scenarios["agents"] = lambda seconds: real_agents.main(seconds, args.system_tokens, args.turn_tokens,
                                                               args.turns, args.case)
    held: dict[str, list[list[Target]]] = {}
    for _ in range(args.runs):
        for name, scenario in scenarios.items():
            if not args.only or name in args.only:
                held.setdefault(name, []).append(scenario(args.seconds))
    if args.runs > 1:
        print_spread(held)
    print(f"\n(took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
