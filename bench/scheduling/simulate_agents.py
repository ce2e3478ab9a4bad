"""Agents beside people on a virtual clock, through the scheduler's own decisions: no servers, no proxy.

``python -m bench.scheduling.simulate_agents [--seconds 90] [--prefix-hold S ...] [--reports-cached]`` drives
the proxy's ``Scheduler`` (scheduler/decisions/core.py) with the load of the agents scenario: six agents whose
conversations start near 16,000 tokens and grow 1,500 a turn, asking again 1 s after each answer of 30
tokens; two people asking 200-token questions every 4 s for 40-token answers; two servers of two slots
reading 4,000 prompt tokens a second, 20 ms a token generated. The servers keep their slots' prompts and
a RAM prompt cache of 65,536 tokens (an 8B model's keys and values in llama-server's default 8 GiB) as the
llama-server under Ollama 0.30 and later does (the tests' model of it, tests/fakes/ollama_cache.py, held to
the real one by tests/llama_server_cases.py): only what a server lacks is read. Each answer tells the
scheduler how many tokens it read and how long that took, as Ollama 0.33 does; ``--reports-cached`` has it
tell the cached count too, as a later Ollama may. Straight to Ollama is round-robin with each server's
first-come queue; sticky, each conversation always on one server (agents and people spread in turn). It
shows what the decisions alone give, in seconds, and lets a setting be tried before it is built.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
from dataclasses import dataclass, field

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import chain_of
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.fakes.ollama_cache import PromptCache

MODEL, SERVERS, SLOTS = "m", ("a", "b"), 2
PROMPT_RATE, TOKEN_SECONDS, TICK = 4000.0, 0.02, 0.05
AGENTS, OPENING, GROWTH, THINK, AGENT_ANSWER = 6, 16_000, 1_500, 1.0, 30
RAM_TOKENS = 65_536  # each server's RAM prompt cache
PEOPLE, ASK_EVERY, QUESTION, QUESTION_ANSWER, PEOPLE_START = 2, 4.0, 200, 40, 2.0


@dataclass
class Figures:
    first_token: list[float] = field(default_factory=list)  # agents' times to first token
    waits: list[float] = field(default_factory=list)  # people's waits for a slot
    turns: int = 0
    prefill: float = 0.0  # seconds the servers spent reading prompts
    cached: int = 0  # agents' prompt tokens read from cache
    prompt: int = 0  # agents' prompt tokens
    asked: int = 0  # questions asked


@dataclass(frozen=True)
class Prompt:
    """A prompt as the proxy sees it (its chain) and as a server reads it (its tokens)."""

    chain: tuple
    tokens: list


def conversation(agent: str, tokens: int) -> Prompt:
    """An agent's prompt of about ``tokens`` tokens: 2,000 of instructions, then tool results of 1,500."""
    results = [{"role": "tool", "content": f"{agent}-{n} " + "x" * (GROWTH * 4 - 12)}
               for n in range(max(1, (tokens - 2_000) // GROWTH))]
    return _prompt([{"role": "system", "content": agent + "y" * 8_000}, *results])


def question(label: str) -> Prompt:
    return _prompt([{"role": "user", "content": label + " " + "q" * (QUESTION * 4)}])


def _prompt(messages: list[dict]) -> Prompt:
    """Its chain, and its tokens: a message's own, four characters each, the same for the same message."""
    tokens = [(message["content"][:24], i) for message in messages for i in range(len(message["content"]) // 4)]
    return Prompt(chain_of("/api/chat", {"messages": messages}), tokens)


def simulate(via_proxy: bool, seconds: float, bounds: Bounds | None = None, by_prompt: bool = True,
             sticky: bool = False, reports_cached: bool = False) -> Figures:
    """Run the load for ``seconds``; through the scheduler if ``via_proxy``, else to FIFO queues: round-robin, or
    each principal always to one server if ``sticky``."""
    specs = [ServerSpec(name, SLOTS, 1) for name in SERVERS]
    scheduler = Scheduler(specs, bounds or Bounds())
    for server in scheduler.servers.values():
        server.warm(MODEL, Loaded({}))
    caches = {name: PromptCache(SLOTS, ram_tokens=RAM_TOKENS) for name in SERVERS}  # what the servers really hold
    home: dict[str, str] = {}
    slot_of: dict[str, int] = {}
    queues: dict[str, list[str]] = {name: [] for name in SERVERS}
    busy = dict.fromkeys(SERVERS, 0)
    turn_of = itertools.cycle(SERVERS)
    numbers = itertools.count()
    events: list = []
    asked: dict[str, tuple[str, Prompt, int, float]] = {}  # ticket -> who, prompt, answer tokens, when asked
    read: dict[str, PromptRead] = {}  # ticket -> what its answer says it read
    length = {f"agent-{i}": OPENING + i * 300 for i in range(AGENTS)}
    figures = Figures()

    def at(when: float, *event) -> None:
        heapq.heappush(events, (when, next(numbers), *event))

    def start(ticket: str, server: str, now: float) -> None:
        who, prompt, answer, since = asked[ticket]
        busy[server] += 1
        slot_of[ticket], cached = caches[server].load(prompt.tokens, now)
        tokens = len(prompt.tokens) - cached
        caches[server].extend(slot_of[ticket], prompt.tokens[cached:])
        read[ticket] = PromptRead(len(prompt.tokens), cached if reports_cached else None, tokens / PROMPT_RATE)
        figures.prefill += tokens / PROMPT_RATE
        if who.startswith("agent"):
            figures.first_token.append(now + tokens / PROMPT_RATE - since)
            figures.cached += cached
            figures.prompt += len(prompt.tokens)
        else:
            figures.waits.append(now - since)
        at(now + tokens / PROMPT_RATE + answer * TOKEN_SECONDS, "end", ticket, server)

    def granted(grants) -> None:
        for grant in grants:
            start(grant.ticket, grant.placement.server, now)

    def ask(who: str, now: float) -> None:
        ticket = f"{who}#{next(numbers)}"
        agent = who.startswith("agent")
        prompt = conversation(who, length[who]) if agent else question(ticket)
        asked[ticket] = (who, prompt, AGENT_ANSWER if agent else QUESTION_ANSWER, now)
        if via_proxy:
            chain = prompt.chain if by_prompt else ()
            granted(scheduler.submit(Ticket(ticket, Share(who), MODEL, SERVERS, prefix=chain), now))
            return
        server = home.setdefault(who, next(turn_of)) if sticky else next(turn_of)
        if busy[server] < SLOTS:
            start(ticket, server, now)
        else:
            queues[server].append(ticket)

    for i in range(AGENTS):
        at(i * 0.5, "ask", f"agent-{i}")
    for i in range(PEOPLE):
        at(PEOPLE_START + i * ASK_EVERY / PEOPLE, "ask", f"person-{i}")
    for tick in range(int(seconds / TICK) + 1):
        at(tick * TICK, "tick")
    while events:
        now, _, what, *rest = heapq.heappop(events)
        if now > seconds:
            break
        if what == "ask":
            ask(rest[0], now)
            if rest[0].startswith("person"):
                figures.asked += 1
                at(now + ASK_EVERY, "ask", rest[0])
        elif what == "tick" and via_proxy:
            granted(scheduler.dispatch(now))
        elif what == "end":
            ticket, server = rest
            who = asked[ticket][0]
            busy[server] -= 1
            caches[server].release(slot_of.pop(ticket), now)
            if who.startswith("agent"):
                figures.turns += 1
                length[who] += GROWTH
                at(now + THINK, "ask", who)
            if via_proxy:
                granted(scheduler.end(ticket, now, read=read[ticket]))
            elif queues[server]:
                start(queues[server].pop(0), server, now)
    return figures


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the load runs (default 90)")
    parser.add_argument("--prefix-hold", type=float, action="append", default=[],
                        help=f"scheduling.prefix_hold to try (may be repeated; default {Bounds().prefix_hold:g})")
    parser.add_argument("--reports-cached", action="store_true",
                        help="answers tell how many prompt tokens came from cache (no Ollama release does yet)")
    args = parser.parse_args()
    runs = [("straight to Ollama", False, None, True, False), ("straight, sticky", False, None, True, True),
            ("proxy, by model alone", True, Bounds(), False, False)]
    runs += [(f"proxy, prefix_hold {hold:g}", True, Bounds(prefix_hold=hold), True, False)
             for hold in args.prefix_hold or [Bounds().prefix_hold]]
    print(f"{'':26} {'agents: first token mean / p95 s':>33} {'turns':>6} {'from cache':>11} {'prefill s':>10} "
          f"{'people: wait p95 s (served/asked)':>34}")
    for name, via_proxy, bounds, by_prompt, sticky in runs:
        f = simulate(via_proxy, args.seconds, bounds, by_prompt, sticky, args.reports_cached)
        first = f"{sum(f.first_token) / len(f.first_token):.1f} / {_p(f.first_token, .95):.1f}"
        people = f"{_p(f.waits, .95):.1f} ({len(f.waits)}/{f.asked})"
        print(f"{name:26} {first:>33} {f.turns:>6} {f.cached / max(f.prompt, 1):>11.0%} {f.prefill:>10.0f} "
              f"{people:>34}")


if __name__ == "__main__":
    main()
