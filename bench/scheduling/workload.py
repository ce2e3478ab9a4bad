"""A batch job keeping the GPUs busy while people ask short questions: the load of two scenarios.

The job keeps a number of long answers in flight until the people are done; the people ask
for a given time, each on a beat of their own (staggered; a beat missed while waiting for an
answer is skipped) or, reading each answer, a while after it came; they finish their last
question; then the job is stopped (its connections closed), so the queue's pressure lasts as
long as anyone waits.
"""

from __future__ import annotations

import itertools
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

    def person(name: str, offset: float) -> None:
        turn, numbers = since + offset, itertools.count()
        while turn < stop:
            time.sleep(max(0.0, turn - time.monotonic()))
            tally.add(ask(rig.url(), rig.token(name), name, next(numbers), load.question_tokens,
                          first_token_within=load.give_up_after, instruction=load.instruction))
            if load.reads_for is not None:
                turn = time.monotonic() + load.reads_for
            while turn <= time.monotonic():  # a turn missed while waiting for an answer is skipped
                turn += load.ask_every

    def people() -> None:
        run_all(*(lambda n=name, i=i: person(n, PEOPLE_START + i * load.ask_every / load.people)
                  for i, name in enumerate(load.names)))
        hangup()

    run_all(people, *(lambda i=i: job(i) for i in range(load.batch_in_flight)))
    return tally, (since, hangup.at)
