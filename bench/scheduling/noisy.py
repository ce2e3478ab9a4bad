"""Noisy neighbour: a batch job keeps 24 long answers in flight while four people ask short questions.

Every prompt is one user message: its own first line, then an instruction text they all share. The
servers keep prompt caches as llama-server does (a slot by similarity, else the least recently used;
a RAM prompt cache), reading what they lack at 4,000 tokens a second.

Run straight to the servers (round-robin), through the proxy as a plain fair queue (``PLAIN_QUEUE``: no
yielding, no slot kept for people, no placement by prompt), then through the proxy as it is with the job's
key in class ``interactive`` and in class ``batch``. A request's wait is the time from asking until the fake
started it in a slot (the fake's record, found by the question's label); its time to first token
is measured by the client. Slot-time shares are each principal's slot-seconds over all the slots'
time; the fair figure splits that time by max-min fairness (equal weights), each person wanting
the slot-time of the questions they asked, the job wanting all it can get. Utilisation counts only
the time while some request waited (from asking until it started, in the proxy or in a fake's queue).
"""

from __future__ import annotations

import math
from dataclasses import replace

from bench.scheduling.client import Answer, Tally
from bench.scheduling.measures import (
    Interval,
    clip,
    fair_shares,
    percentiles,
    utilisation_while_waiting,
)
from bench.scheduling.rig import Rig, Servers, rig
from bench.scheduling.table import Column, Target, print_scenario, show, triple
from bench.scheduling.workload import BATCH_JOB, Workload, drive
from tests.fakes.ollama_runner import RequestRecord

SERVERS = Servers(count=2, num_parallel=2, token_seconds=0.02, prompt_token_seconds=1 / 4000)
# ~200 characters every prompt shares after its first line, short enough that a question's answer stays 30 tokens.
INSTRUCTION = ("Answer plainly and briefly, without lists or headings; state assumptions, mention uncertainty "
               "honestly, include one concrete example, and finish with exactly one verification step.")
LOAD = Workload(batch_in_flight=24, batch_tokens=300, people=4, question_tokens=30, ask_every=3.0,
                instruction=INSTRUCTION)
READING = replace(LOAD, reads_for=3.0)
STRAIGHT, INTERACTIVE, BATCH = "straight to Ollama", "proxy, batch key interactive", "proxy, batch key in class batch"
PLAIN = "plain fair queue"
# A gateway that only queues fairly: no one yields, no slot kept for people, no placement by prompt.
PLAIN_QUEUE = {"yield_within": 0, "interactive_headroom": 0, "prefix_hold": 0, "prompt_placement": False}
RUNS = {STRAIGHT: (None, None), PLAIN: ("interactive", PLAIN_QUEUE), INTERACTIVE: ("interactive", None),
        BATCH: ("batch", None)}


def main(seconds: float, load: Workload = LOAD, title: str = "noisy neighbour") -> list[Target]:
    columns, figures = {}, {}
    for name, (job_class, scheduling) in RUNS.items():
        with rig(SERVERS, via_proxy=job_class is not None, people=load.names, jobs={BATCH_JOB: job_class},
                 scheduling=scheduling) as where:
            tally, window = drive(where, load, seconds)
            columns[name], figures[name] = measure(where, tally, window)
    asking = (f"every {load.ask_every:g} s" if load.reads_for is None
              else f"again {load.reads_for:g} s after each answer")
    about = (f"{load.batch_in_flight} batch answers of {load.batch_tokens} tokens in flight, {load.people} people "
             f"asking {load.question_tokens} tokens {asking}; {SERVERS.count} servers x "
             f"{SERVERS.num_parallel} slots keeping prompt caches, {SERVERS.token_seconds * 1e3:g} ms a token, "
             f"people ask for {seconds:g} s")
    return print_scenario(title, about, columns, targets(figures))


def reading(seconds: float) -> list[Target]:
    """The noisy neighbour with people who read each answer before they ask again."""
    return main(seconds, READING, "noisy neighbour, people reading their answers")


def measure(where: Rig, tally: Tally, window: Interval) -> tuple[Column, dict]:
    """Work out the run's rows, and the figures its targets read."""
    records = where.records()
    people, job = tally.of(*LOAD.names), tally.of(BATCH_JOB)  # the same people in every load
    column: Column = {}
    for who, answers in (("people", people), ("batch", job)):
        column[f"{who}: wait p50 / p95 / max s"] = triple(percentiles(waits(answers, records)))
        if who == "people":
            later = [a for a in answers if not a.label.endswith("#0")]
            column["people: the same, each one's first question left out"] = triple(percentiles(waits(later, records)))
        column[f"{who}: first token p50 / p95 / max s"] = triple(percentiles(
            [a.first_token_at - a.asked_at for a in answers if a.first_token_at is not None]))
        column[f"{who}: asked / served / refused"] = (
            f"{len(answers)} / {sum(a.served for a in answers)} / {sum(a.refused for a in answers)}")
    used, fair = slot_shares(records, people, window)
    for principal in (BATCH_JOB, *LOAD.names):
        share = show(used.get(principal, 0.0), "%")
        column[f"slot-time share {principal} (fair)"] = f"{share} ({show(fair[principal], '%')})"
    busy = [clip(interval, window) for interval in busy_intervals(records, window[1])]
    waiting = [(a.asked_at, started_at(a, records) or a.ended_at) for a in tally.answers]
    utilisation = utilisation_while_waiting(busy, waiting, SERVERS.slots, window)
    column["utilisation while anything waits"] = show(utilisation, "%")
    people_wait_p95 = percentiles(waits(people, records))[1]
    return column, {"unserved": len(people) - sum(a.served for a in people), "wait p95": people_wait_p95,
                    "utilisation": utilisation}


def targets(figures: dict[str, dict]) -> list[Target]:
    found = []
    for run in (INTERACTIVE, BATCH):
        got = figures[run]
        found += [Target("people's questions not served = 0", run, got["unserved"], 0),
                  Target("people wait p95 <= 3 s", run, got["wait p95"], 3.0, "s"),
                  Target("utilisation while anything waits >= 98 %", run, got["utilisation"], 0.98, "%", at_least=True)]
    found.append(Target("people wait p95 <= 2 s", BATCH, figures[BATCH]["wait p95"], 2.0, "s"))
    return found


def started_at(answer: Answer, records: dict[str, list[RequestRecord]]) -> float | None:
    """Return when a fake started the question in a slot, if one did."""
    return min((r.started_at for r in records.get(answer.label, ()) if r.started_at is not None), default=None)


def waits(answers: list[Answer], records: dict[str, list[RequestRecord]]) -> list[float]:
    """Return each question's wait: from asking until a fake started it, or until its client left if none did.

    A refused question waited for nothing and is left out.
    """
    return [(started_at(a, records) or a.ended_at) - a.asked_at for a in answers if not a.refused]


def busy_intervals(records: dict[str, list[RequestRecord]], end: float) -> list[Interval]:
    """Return the time each record held a slot (one still running: until end)."""
    return [(r.started_at, r.finished_at or end) for rs in records.values() for r in rs if r.started_at is not None]


def slot_shares(records: dict[str, list[RequestRecord]], people: list[Answer],
                window: Interval) -> tuple[dict[str, float], dict[str, float]]:
    """Return each principal's share of the slots' time in window, and its max-min fair share."""
    capacity = SERVERS.slots * (window[1] - window[0])
    used: dict[str, float] = {}
    for label, rs in records.items():
        principal = label.split("#", 1)[0]
        for interval in busy_intervals({label: rs}, window[1]):
            start, end = clip(interval, window)
            used[principal] = used.get(principal, 0.0) + max(0.0, end - start)
    question_seconds = LOAD.question_tokens * SERVERS.token_seconds
    demands = {BATCH_JOB: math.inf, **{name: 0.0 for name in LOAD.names}}
    for answer in people:
        demands[answer.principal] += question_seconds
    fair = fair_shares(demands, capacity)
    return ({name: seconds / capacity for name, seconds in used.items()},
            {name: seconds / capacity for name, seconds in fair.items()})
