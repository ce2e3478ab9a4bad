"""A batch job keeping the GPUs busy while people ask short questions: the load of two scenarios.

The job keeps a number of long answers in flight until the people are done; the people ask
for a given time, each on a beat of their own (staggered, each question up to ``jitter`` seconds
early or late, asked whether or not the one before was answered: 4 people every 3 s for 45 s ask
60 questions) or, reading each answer, a while after it came; they finish their last question;
then the job is stopped (its connections closed), so the queue's pressure lasts as long as
anyone waits.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass

from bench.scheduling.client import Hangup, Tally, ask, run_all
from bench.scheduling.measures import Interval
from bench.scheduling.rig import Rig

BATCH_JOB = "batch-job"
PEOPLE_START = 2.0  # seconds the job runs alone first, so people come to a full queue


@dataclass(frozen=True)
class Workload:
    batch_in_flight: int = 24
    batch_tokens: int = 300
    people: int = 4
    question_tokens: int = 30
    ask_every: float = 3.0
    jitter: float = 0.5  # seconds a question on a beat comes early or late at most (the same every run)
    give_up_after: float | None = None  # seconds a person waits for the first token before leaving
    # People who read each answer this long before asking again, in place of asking on a beat.
    reads_for: float | None = None
    # Every prompt's text after its own first line (the job's and the people's alike), as a team's tools send.
    instruction: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"person-{i}" for i in range(self.people))


def drive(rig: Rig, load: Workload, seconds: float) -> tuple[Tally, Interval]:
    """Run the load for about seconds; return the answers and the window the job ran in."""
    tally, hangup = Tally(), Hangup()
    since = time.monotonic()
    stop = since + seconds

    def job(first: int) -> None:
        numbers = itertools.count(first, load.batch_in_flight)
        while hangup.at is None:
            tally.add(ask(rig.url(), rig.token(BATCH_JOB), BATCH_JOB, next(numbers), load.batch_tokens, hangup=hangup,
                          instruction=load.instruction))

    def question(name: str, number: int, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        tally.add(ask(rig.url(), rig.token(name), name, number, load.question_tokens,
                      first_token_within=load.give_up_after, instruction=load.instruction))

    def on_beat(name: str, offset: float) -> None:
        run_all(*(lambda k=k, at=at: question(name, k, at) for k, at in enumerate(beats(load, name, since + offset,
                                                                                         seconds))))

    def reading(name: str, offset: float) -> None:
        turn, numbers = since + offset, itertools.count()
        while turn < stop:
            question(name, next(numbers), turn)
            turn = time.monotonic() + load.reads_for

    def people() -> None:
        person = on_beat if load.reads_for is None else reading
        run_all(*(lambda n=name, i=i: person(n, PEOPLE_START + i * load.ask_every / load.people)
                  for i, name in enumerate(load.names)))
        hangup()

    run_all(people, *(lambda i=i: job(i) for i in range(load.batch_in_flight)))
    return tally, (since, hangup.at)


def beats(load: Workload, name: str, first: float, seconds: float) -> list[float]:
    """When a person on a beat asks for ``seconds``: every ``ask_every`` from ``first``, each up to ``jitter`` early or
    late, the swings drawn from the person's name (the same every run, in the bench and in ``simulate``)."""
    swing = random.Random(name)
    return [first + k * load.ask_every + swing.uniform(-load.jitter, load.jitter)
            for k in range(round(seconds / load.ask_every))]
