"""Abandonment: people who close the connection when no token came within 2 s, behind a busy batch job.

The batch job (its key in class interactive, as a team that sets nothing has it) keeps the
servers busy as in the noisy neighbour. Each question carries a label; the client notes when it
closed its connection, and the fake's records (found by label) tell whether and when a server
received and started it. Counted: questions a server started after their client had left (the
target is none), and questions that reached a server after their client had left.
"""

from __future__ import annotations

from bench.scheduling.client import Tally
from bench.scheduling.measures import percentiles
from bench.scheduling.rig import Rig, Servers, rig
from bench.scheduling.table import Column, Target, print_scenario, show, triple
from bench.scheduling.workload import BATCH_JOB, Workload, drive

SERVERS = Servers(count=2, num_parallel=2, token_seconds=0.02)
LOAD = Workload(batch_in_flight=24, batch_tokens=300, people=8, question_tokens=30, ask_every=3.0,
                give_up_after=2.0)
STRAIGHT, PROXY = "straight to Ollama", "proxy, batch key interactive"
SHARE_OF_SECONDS = 1 / 2  # of --seconds


def main(seconds: float) -> list[Target]:
    seconds *= SHARE_OF_SECONDS
    columns, late = {}, {}
    for name, via_proxy in ((STRAIGHT, False), (PROXY, True)):
        with rig(SERVERS, via_proxy=via_proxy, people=LOAD.names, jobs={BATCH_JOB: "interactive"}) as where:
            tally, _ = drive(where, LOAD, seconds)
            columns[name], late[name] = measure(where, tally)
    about = (f"{LOAD.people} people asking {LOAD.question_tokens} tokens every {LOAD.ask_every:g} s and leaving "
             f"after {LOAD.give_up_after:g} s without a token, for {seconds:g} s; {LOAD.batch_in_flight} batch "
             f"answers of {LOAD.batch_tokens} tokens in flight; {SERVERS.count} servers x {SERVERS.num_parallel} slots")
    return print_scenario("abandonment", about, columns,
                   [Target("started after their client left = 0", PROXY, late[PROXY], 0)])


def measure(where: Rig, tally: Tally) -> tuple[Column, int]:
    """Return the run's rows, and how many questions a server started after their client left."""
    records = where.records()
    people = tally.of(*LOAD.names)
    gone = [a for a in people if a.left_at is not None]
    reached_late, started_late, lateness = 0, 0, []
    for answer in gone:
        mine = records.get(answer.label, [])
        reached_late += any(r.queued_at > answer.left_at for r in mine)
        late = [r.started_at - answer.left_at for r in mine if r.started_at and r.started_at > answer.left_at]
        started_late += bool(late)
        lateness += late
    served = [a for a in people if a.served]
    never_started = sum(not any(r.started_at for r in records.get(a.label, [])) for a in gone)
    return {
        "people: asked / served / gave up / refused": (f"{len(people)} / {len(served)} / {len(gone)} / "
                                                      f"{sum(a.refused for a in people)}"),
        "gave up and never started": str(never_started),
        "reached a server after their client left": str(reached_late),
        "started after their client left": str(started_late),
        "  latest such start, after the client left": show(max(lateness), "s") if lateness else "-",
        "people served: first token p50 / p95 / max s": triple(percentiles(
            [a.first_token_at - a.asked_at for a in served])),
        "batch answers served": str(sum(a.served for a in tally.of(BATCH_JOB))),
    }, started_late
