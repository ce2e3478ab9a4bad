"""Where each agent's turns ran, turn by turn: ``python -m bench.scheduling.agent_turns [--runs 3]``.

The agents scenario (agents.py) through the proxy alone, its figures, then each agent's turns as the servers they
ran on (``1`` on the second fake), a turn that read its conversation again marked with when it started
(``1*@26``), and every such re-read: how long the proxy held it, and what the proxy's mirror expected the server
to hold (the access log's ``cached_tokens_estimated``) beside what the fake read from cache. A run of the
scenario falls into one of a few outcomes; this shows which turns made it.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.scheduling import agents
from bench.scheduling.rig import rig

REREAD_TOKENS = 5_000  # a turn that read more than this read its conversation again (a turn adds 1,500)


def run(seconds: float) -> None:
    names = tuple(f"agent-{i}" for i in range(agents.AGENTS))
    people = tuple(f"person-{i}" for i in range(agents.PEOPLE))
    with rig(agents.SERVERS, via_proxy=True, people=names + people, scheduling={},
             reply_to_tool_result=" ".join(["done"] * agents.ANSWER_TOKENS)) as where:
        since = time.monotonic()
        turns, tally = agents.drive(where, names, people, seconds)
        column, _ = agents.measure(where, turns, tally)
        ran = {label: (server, record) for server, fake in enumerate(where.fakes)
               for label, record in fake.records() if label is not None and record.started_at is not None}
        access = [json.loads(line) for line in where.proxy.access_lines()]
    estimated: dict[str, list] = {}  # an agent's chats in the order they ended: one at a time, so turn by turn
    for line in access:
        if line.get("path") == "/api/chat":
            estimated.setdefault(line.get("token"), []).append(line.get("cached_tokens_estimated"))
    print("\n" + "; ".join(f"{row}: {figure}" for row, figure in column.items()))
    rereads = []
    for name in names:
        shown = []
        for turn in sorted((t for t in turns if t.label.startswith(f"{name}#")), key=lambda t: t.asked_at):
            if turn.label not in ran:
                continue
            server, record = ran[turn.label]
            missed = record.prompt_tokens - (record.cached_tokens or 0)
            number = int(turn.label.split("#")[1])
            if missed > REREAD_TOKENS and number > 0:
                shown.append(f"{server}*@{record.started_at - since:.0f}")
                guesses = estimated.get(name, [])
                rereads.append((record.started_at - since, turn.label, server, record.queued_at - turn.asked_at,
                                record.prompt_tokens, guesses[number] if number < len(guesses) else None))
            else:
                shown.append(str(server))
        print(f"  {name}: {' '.join(shown)}")
    print(f"  {len(rereads)} turns read their conversation again:")
    for started, label, server, held, tokens, guess in sorted(rereads):
        print(f"    {started:5.1f} s  {label:<10} on {server}, held {held:5.2f} s in the proxy, {tokens:,} tokens, "
              f"the mirror expected {guess} cached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the agents ask (default 90)")
    args = parser.parse_args()
    for _ in range(args.runs):
        run(args.seconds)


if __name__ == "__main__":
    main()
