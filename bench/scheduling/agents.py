"""Agents beside people: coding agents whose conversations grow every turn, and people asking short questions.

Six agents, each with a conversation near 16,000 tokens (instructions, then tool results) that grows
1,500 tokens a turn, ask again a second after each answer of 30 tokens; two people ask short questions
every 4 s. The servers keep their slots' prompts and a RAM prompt cache of 65,536 tokens (an 8B model's
keys and values in llama-server's default 8 GiB) as the llama-server under Ollama 0.30 and later does
(tests/fakes/ollama_cache.py, held to the real one), and read the tokens they lack at 4,000 a second;
``--real`` runs conversations on two real llama-servers instead (real_agents.py). Run straight to the
servers (round-robin, and sticky: each conversation and person always on one server), through the proxy
placing by model alone (``scheduling.prompt_placement: false``) and through the proxy as it is. An
agent's time to first token is measured by its client; prefill is the seconds the servers spent reading
prompts; a person's wait runs from asking until a server started the question, and the first token comes once the
server has read the prompts of its lower slots too.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

from bench.scheduling.client import MODEL, Tally, ask, run_all
from bench.scheduling.measures import jain, percentiles
from bench.scheduling.noisy import waits
from bench.scheduling.rig import Rig, Servers, rig
from bench.scheduling.table import Column, Target, print_scenario, show, triple

# Agents' conversations need a context that holds them (the 4,096 a small GPU gets would cut them to it).
SERVERS = Servers(count=2, num_parallel=2, token_seconds=0.02, prompt_token_seconds=1 / 4000, ram_tokens=65_536,
                  num_ctx=65_536)
AGENTS, PEOPLE = 6, 2
OPENING_TOKENS, TURN_TOKENS, ANSWER_TOKENS, THINK_SECONDS = 16_000, 1_500, 30, 1.0
QUESTION_TOKENS, ASK_EVERY = 40, 4.0
STRAIGHT, STICKY, BY_MODEL, PROXY = "straight to Ollama", "straight, sticky", "proxy, by model alone", "proxy"
RUNS = {STRAIGHT: None, STICKY: None, BY_MODEL: {"prompt_placement": False}, PROXY: {}}


@dataclass
class Turn:
    """One agent turn, on the benchmark's clock."""

    label: str
    asked_at: float
    first_token_at: float | None = None
    finished_at: float | None = None


def main(seconds: float) -> list[Target]:
    """Run each way for twice ``seconds`` (the issue's 90 s by default) and print them side by side."""
    seconds *= 2
    agents = tuple(f"agent-{i}" for i in range(AGENTS))
    people = tuple(f"person-{i}" for i in range(PEOPLE))
    columns, figures = {}, {}
    for name, scheduling in RUNS.items():
        with rig(SERVERS, via_proxy=scheduling is not None, people=agents + people, scheduling=scheduling,
                 sticky=name == STICKY, reply_to_tool_result=" ".join(["done"] * ANSWER_TOKENS)) as where:
            turns, tally = drive(where, agents, people, seconds)
            columns[name], figures[name] = measure(where, turns, tally)
    about = (f"{AGENTS} agents, conversations from {OPENING_TOKENS:,} tokens growing {TURN_TOKENS:,} a turn, "
             f"next turn {THINK_SECONDS:g} s after each answer; {PEOPLE} people asking {QUESTION_TOKENS} tokens "
             f"every {ASK_EVERY:g} s; {SERVERS.count} servers x {SERVERS.num_parallel} slots keeping prompt "
             f"caches ({SERVERS.ram_tokens:,} tokens of RAM each), {1 / SERVERS.prompt_token_seconds:,.0f} prompt "
             f"tokens/s, for {seconds:g} s")
    return print_scenario("agents beside people", about, columns, targets(figures))


def drive(where: Rig, agents: tuple[str, ...], people: tuple[str, ...],
          seconds: float) -> tuple[list[Turn], Tally]:
    """Run the agents and the people for ``seconds``; each finishes what it asked last."""
    turns: list[Turn] = []
    lock = threading.Lock()
    tally = Tally()
    since = time.monotonic()
    stop = since + seconds

    def agent(index: int, name: str) -> None:
        time.sleep(index * 0.5)
        messages = opening(name, index)
        for number in range(10_000):
            if time.monotonic() >= stop:
                return
            turn = Turn(f"{name}#{number}", time.monotonic())
            messages.append({"role": "tool", "content": words(f"{turn.label}", name, number, TURN_TOKENS)})
            reply = chat(where.url(name), where.token(name), messages, turn)
            with lock:
                turns.append(turn)
            if reply is None:
                return
            messages.append({"role": "assistant", "content": reply})
            time.sleep(THINK_SECONDS)

    def person(index: int, name: str) -> None:
        turn, numbers = since + 2.0 + index * ASK_EVERY / len(people), iter(range(10_000))
        while turn < stop:
            time.sleep(max(0.0, turn - time.monotonic()))
            tally.add(ask(where.url(name), where.token(name), name, next(numbers), QUESTION_TOKENS))
            while turn <= time.monotonic():
                turn += ASK_EVERY

    run_all(*(lambda i=i, n=n: agent(i, n) for i, n in enumerate(agents)),
            *(lambda i=i, n=n: person(i, n) for i, n in enumerate(people)))
    return turns, tally


def opening(name: str, index: int) -> list[dict]:
    """An agent's conversation before its first turn here: instructions, a task, earlier turns' tool results."""
    messages = [{"role": "system", "content": words("instructions", name, -1, 2_000)},
                {"role": "user", "content": words("task", name, -2, 50)}]
    earlier = (OPENING_TOKENS + index * 300 - 2_050) // (TURN_TOKENS + ANSWER_TOKENS)
    for number in range(earlier):
        messages += [{"role": "assistant", "content": " ".join(["done"] * ANSWER_TOKENS)},
                     {"role": "tool", "content": words("earlier", name, -3 - number, TURN_TOKENS)}]
    return messages[:-1]  # the first turn adds its own tool result


def words(label: str, name: str, number: int, tokens: int) -> str:
    """``tokens`` words of three letters (a token each to the fake, four characters to the proxy's estimate)."""
    chosen = random.Random(f"{name}/{number}")
    return " ".join([label] + ["".join(chosen.choices("abcdefghijklmnopqrstuvwxyz", k=3)) for _ in range(tokens - 1)])


def chat(url: str, token: str | None, messages: list[dict], turn: Turn) -> str | None:
    """Stream one turn; note its first token and end; return the reply (None: it failed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = []
    try:
        with requests.post(f"{url}/api/chat", json={"model": MODEL, "messages": messages}, headers=headers,
                           stream=True, timeout=600) as response:
            if response.status_code != 200:
                return None
            for line in response.iter_lines():
                chunk = json.loads(line)
                content = chunk.get("message", {}).get("content")
                if content:
                    turn.first_token_at = turn.first_token_at or time.monotonic()
                    reply.append(content)
                if chunk.get("done"):
                    turn.finished_at = time.monotonic()
    except requests.RequestException:
        return None
    return "".join(reply) if turn.finished_at is not None else None


def measure(where: Rig, turns: list[Turn], tally: Tally) -> tuple[Column, dict]:
    """Work out the run's rows, and the figures its targets read."""
    records = where.records()
    agent_records = [r for turn in turns for r in records.get(turn.label, ()) if r.started_at is not None]
    all_records = [r for rs in records.values() for r in rs if r.started_at is not None and r.prompt_tokens]
    prompt = sum(r.prompt_tokens for r in agent_records)
    cached = sum(r.cached_tokens or 0 for r in agent_records)
    first = [t.first_token_at - t.asked_at for t in turns if t.first_token_at is not None]
    done = [t for t in turns if t.finished_at is not None]
    prefill = sum((r.prompt_tokens - (r.cached_tokens or 0)) * SERVERS.prompt_token_seconds for r in all_records)
    people_waits = waits(tally.answers, records)
    people_first = [a.first_token_at - a.asked_at for a in tally.answers if a.first_token_at is not None]
    # Fewer swaps of conversations in and out of slots means more from cache, and longer stretches for some agents.
    done_by = Counter(t.label.split("#")[0] for t in done)
    each = sorted(done_by[agent] for agent in {t.label.split("#")[0] for t in turns})  # an agent done none: 0
    column: Column = {
        "agents: first token mean / p95 s": f"{mean(first):.2f} / {percentiles(first)[1]:.2f}",
        "agents: turns done": str(len(done)),
        "agents: turns each, fewest / most (Jain)": f"{each[0]} / {each[-1]} ({jain(each):.2f})" if each else "-",
        "agents: prompt tokens from cache": show(cached / prompt if prompt else float("nan"), "%"),
        "prefill GPU-s (all requests)": f"{prefill:.0f}",
        "people: wait p50 / p95 / max s": triple(percentiles(people_waits)),
        "people: first token p50 / p95 / max s": triple(percentiles(people_first)),
        "people: asked / served": f"{len(tally.answers)} / {sum(a.served for a in tally.answers)}",
    }
    return column, {"first token mean": mean(first), "turns": len(done), "cached": cached / prompt if prompt else 0.0,
                    "people wait p95": percentiles(people_waits)[1],
                    "people first token p95": percentiles(people_first)[1],
                    "unserved": sum(not a.served for a in tally.answers)}


def targets(figures: dict[str, dict]) -> list[Target]:
    straight, sticky, proxy = figures[STRAIGHT], figures[STICKY], figures[PROXY]
    return [Target("people wait p95 <= 1 s", PROXY, proxy["people wait p95"], 1.0, "s"),
            # The wait ends when a server starts the question; its first token comes once the slots below have read.
            Target("people's first token p95 <= 1 s", PROXY, proxy["people first token p95"], 1.0, "s"),
            Target("people's questions not served = 0", PROXY, proxy["unserved"], 0),
            Target("agents' first token mean <= 0.6 x straight's", PROXY,
                   proxy["first token mean"] / straight["first token mean"], 0.6),
            Target("agents' first token mean <= sticky's", PROXY,
                   proxy["first token mean"] / sticky["first token mean"], 1.0),
            Target("agents' prompt tokens from cache >= 75 %", PROXY, proxy["cached"], 0.75, "%", at_least=True),
            Target("agent turns >= 1.3 x straight's", PROXY, proxy["turns"] / max(straight["turns"], 1), 1.3,
                   at_least=True)]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
