"""Conversations after one system text on a virtual clock, through the scheduler's own decisions: no servers.

``python -m bench.scheduling.simulate_shared [--conversations N ...] [--turns 5]`` sends the conversations of
one team, each opening with the same 2,050-token system text and growing by a 200-token question and a
25-token answer a turn, one turn at a time in turn, to two servers of two slots that keep prompts as
llama-server does (the tests' model of it, tests/fakes/ollama_cache.py). Through the proxy's ``Scheduler``,
and sticky (each conversation always on one server, spread in turn). Printed: the tokens the servers read
again on turns after the first, beyond what each turn adds.
"""

from __future__ import annotations

import argparse

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import Chain, chain_of
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.fakes.ollama_cache import PromptCache

SERVERS, SLOTS, MODEL, PROMPT_RATE = ("a", "b"), 2, "m", 4000.0
SYSTEM = "s" * (2050 * 4)  # four characters a token, to the proxy's estimate and to the model here


def conversation(name: str, turns: int) -> tuple[Chain, list]:
    """A conversation's prompt at a turn, as the proxy follows it (its chain) and as a server reads it."""
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(turns):
        if turn:
            messages.append({"role": "assistant", "content": "a" * 100})
        messages.append({"role": "user", "content": f"{name} {turn} " + "q" * 800})
    tokens = [(m["content"][:12], i) for m in messages for i in range(len(m["content"]) // 4)]
    return chain_of("/api/chat", {"messages": messages}), tokens


def reread(conversations: int, turns: int, via_proxy: bool) -> int:
    """Run the turns; return the tokens read again beyond each turn's new ones, turns 2 and later."""
    scheduler = Scheduler([ServerSpec(name, SLOTS, 1) for name in SERVERS], Bounds())
    for server in scheduler.servers.values():
        server.warm(MODEL, Loaded({}))
    caches = {name: PromptCache(SLOTS) for name in SERVERS}
    home: dict[str, str] = {}
    last: dict[str, int] = {}
    total, now = 0, 0.0
    for turn in range(1, turns + 1):
        for n in range(conversations):
            name, ticket = f"c{n}", f"c{n}-{turn}"
            chain, tokens = conversation(name, turn)
            if via_proxy:
                [grant] = scheduler.submit(Ticket(ticket, Share(name, team="team"), MODEL, SERVERS, prefix=chain), now)
                server = grant.placement.server
            else:
                server = home.setdefault(name, SERVERS[len(home) % len(SERVERS)])
            slot, cached = caches[server].load(tokens, now)
            caches[server].extend(slot, tokens[cached:])
            if turn > 1:
                total += max(0, last[name] - cached)
            last[name] = len(tokens)
            now += 1.0
            caches[server].release(slot, now)
            if via_proxy:
                scheduler.end(ticket, now, read=PromptRead(len(tokens), None, (len(tokens) - cached) / PROMPT_RATE))
            now += 0.1
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, action="append", help="how many (default: 2 and 3)")
    parser.add_argument("--turns", type=int, default=5, help="turns of each (default 5)")
    args = parser.parse_args()
    print(f"{'conversations':>13}  {'re-read, proxy':>14}  {'re-read, sticky':>15}")
    for count in args.conversations or [2, 3]:
        print(f"{count:>13}  {reread(count, args.turns, True):>14,}  {reread(count, args.turns, False):>15,}")


if __name__ == "__main__":
    main()
