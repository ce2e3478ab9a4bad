"""Run the scheduling benchmark's scenarios and print each beside the same load sent straight to the servers."""

from __future__ import annotations

import argparse
import logging
import time

from bench.scheduling import SCENARIOS
from bench.scheduling import __doc__ as about


def main() -> None:
    parser = argparse.ArgumentParser(description=about.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="how long people ask in the noisy neighbour and abandonment runs; thrash runs a third "
                             "of it (default 45)")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append",
                        help="run only this scenario (may be given more than once)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fakes' access lines
    began = time.monotonic()
    for name, scenario in SCENARIOS.items():
        if not args.only or name in args.only:
            scenario(args.seconds)
    print(f"\n(took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
