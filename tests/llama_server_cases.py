"""One table of how llama-server (under Ollama 0.30 and later) reuses prompts, for the real engine and its models.

Each case sends chats one after another to one server of two slots and says, for each, what the
server reads from its cache: ``none`` (nothing but the template's first tokens), ``all`` (the whole
prompt of the conversation's last turn) or ``part`` (some, less than that: a system text another
conversation shares); and the slot it takes, by llama-server's number, which orders their reading
(the lower slot's prompt is read first): a server takes its last never-used slot first. The real
llama-server behind Ollama's API (tests/e2e/ollama_on_llama.py), the fake Ollama
(tests/fakes/ollama_cache.py) and the proxy's mirror (ollama_proxy/scheduler/decisions/caches.py)
are each held to the same table, each counting tokens its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

NONE, PART, ALL = "none", "part", "all"
REPLY = "Done."  # what each conversation says the model answered: the slot holds what it really generated
SLOTS = 2


@dataclass(frozen=True)
class Step:
    who: str
    turn: int  # its turns so far, this one included
    reads: str  # what the server has of it: NONE, PART or ALL
    slot: int  # the slot it takes, by llama-server's number


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    shared_system: bool = False  # every conversation opens with the same system text


def _turns(*rounds: str) -> tuple[Step, ...]:
    """Steps from rounds written as "a:none@1 b:all@0": each who's next turn, what it reads, and the slot it takes."""
    steps, turns = [], {}
    for line in rounds:
        for word in line.split():
            who, rest = word.split(":")
            reads, slot = rest.split("@")
            turns[who] = turns.get(who, 0) + 1
            steps.append(Step(who, turns[who], reads, int(slot)))
    return tuple(steps)


CASES = [
    Case("a conversation's next turn reads only what is new", _turns("a:none@1", "a:all@1", "a:all@1")),
    Case("two conversations keep a slot each", _turns("a:none@1 b:none@0", "a:all@1 b:all@0")),
    Case("a third conversation pushes one out of its slot into RAM, which gives it back",
         _turns("a:none@1 b:none@0 c:none@1", "a:all@0 b:all@1 c:all@0")),
    Case("five conversations on two slots all come back from RAM",
         _turns("a:none@1 b:none@0 c:none@1 d:none@0 e:none@1", "a:all@0 b:all@1 c:all@0 d:all@1 e:all@0")),
    Case("a question between turns takes a slot; the conversations come back", _turns(
        "a:none@1 b:none@0", "q:none@1", "a:all@0 b:all@1")),
    # The similar slot is taken before the empty one, and replaced unsaved: each turn reads its own part again.
    Case("with a shared system text, a new conversation takes the similar slot, not the empty one",
         _turns("a:none@1 b:part@1", "a:part@1 b:part@1"), shared_system=True),
]

IDS = [case.name for case in CASES]
parametrized = pytest.mark.parametrize("case", CASES, ids=IDS)


def messages(case: Case, step: Step) -> list[dict]:
    """The chat a step sends: its system text, then each turn's question and the reply it got."""
    owner = "the team" if case.shared_system else f"{step.who}'s team"
    sentences = 5 if step.who == "q" else 25  # a question is short
    chat = [{"role": "system", "content": " ".join(f"{owner} keeps file {i} tidy and tested." for i in
                                                     range(sentences))}]
    for turn in range(step.turn):
        if turn:
            chat.append({"role": "assistant", "content": REPLY})
        chat.append({"role": "user", "content": f"{step.who} asks, turn {turn}: fix the parser, then run the tests."})
    return chat


def reads(cached: int, prompt: int, last: int | None) -> str:
    """What a prompt of ``prompt`` tokens read from cache (``cached``), given its conversation's last prompt."""
    if cached < 0.1 * prompt:
        return NONE
    if last is not None and cached >= last - 2:
        return ALL
    return PART


def expected(case: Case) -> list[tuple[str, int]]:
    """Each step's reading from cache and slot, as ``found`` pairs them."""
    return [(step.reads, step.slot) for step in case.steps]
