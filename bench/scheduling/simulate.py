"""The noisy neighbour on a virtual clock, through the scheduler's own decisions: no servers, no proxy.

``python -m bench.scheduling.simulate [--seconds 45] [--yield-within S] [--pace GAP ...]`` drives the
proxy's ``Scheduler`` (scheduler/decisions/core.py) with the noisy neighbour's load: a batch job keeping 24 answers
of 6 s in flight on two servers of two slots, four people asking 0.6 s questions, on a beat every 3 s
(±0.5 s, answered or not) or 3 s after reading each answer; each prompt as the benchmark sends it (noisy.py), each
answer telling how long its prompt took to read. Every answer takes exactly its length and nothing else
takes time, so it shows what the decisions alone give, in a second, and lets a policy be tried
before it is built. ``--yield-within`` sets ``scheduling.yield_within`` (default 1; 0: strict order);
``--pace`` holds the batch job's starts on the model that many seconds apart while people use it
(an experiment here, not the proxy's behaviour).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
from dataclasses import dataclass, field

from bench.scheduling.noisy import INSTRUCTION, LOAD
from bench.scheduling.workload import beats
from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import Chain, chain_of, prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead

MODEL, JOB = "m", "batch-job"
BATCH_SECONDS, QUESTION_SECONDS, ASK_EVERY, PEOPLE_START, TICK = 6.0, 0.6, 3.0, 2.0, 0.05
PROMPT_RATE = 4000.0  # prompt tokens a second: each answer tells the scheduler how long its prompt took


class PacedScheduler(Scheduler):
    """The scheduler, but the job's starts on a model are held ``gap`` seconds apart while people use it."""

    def __init__(self, *args, gap: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gap, self.last_start = gap, -math.inf

    def _leaves_too_little(self, ticket, placement, now) -> bool:
        if super()._leaves_too_little(ticket, placement, now):
            return True
        people_here = now - self.last_interactive.get(ticket.model, -math.inf) < self.bounds.headroom_window
        return ticket.share.principal == JOB and people_here and now - self.last_start < self.gap

    def _begin(self, ticket, placement, now):
        if ticket.share.principal == JOB:
            self.last_start = now
        return super()._begin(ticket, placement, now)


@dataclass
class Run:
    """One simulated run: the events to come, and what the people waited."""

    scheduler: Scheduler
    job_class: str
    events: list = field(default_factory=list)
    asked: dict = field(default_factory=dict)  # ticket -> (who, when asked)
    waits: list = field(default_factory=list)  # a person's wait for each question
    intervals: list = field(default_factory=list)  # (asked, started) of every request
    busy: list = field(default_factory=list)  # (start, end) of every slot use
    numbers: itertools.count = field(default_factory=itertools.count)
    prompts: dict = field(default_factory=dict)  # ticket -> its prompt, as the proxy follows it

    def at(self, when: float, what: str, who: str = "") -> None:
        heapq.heappush(self.events, (when, next(self.numbers), what, who))

    def ask(self, now: float, who: str) -> None:
        ticket = f"{who}#{next(self.numbers)}"
        self.asked[ticket] = (who, now)
        klass = "interactive" if who != JOB else self.job_class
        self.prompts[ticket] = prompt = _prompt(ticket, 270 if who == JOB else 3)
        self.started(now, self.scheduler.submit(Ticket(ticket, Share(who, 1.0, klass), MODEL, ("a", "b"),
                                                       prefix=prompt), now))

    def end(self, now: float, ticket: str):
        """The answer ended: it tells how many prompt tokens it read, and how long that took (as Ollama 0.33)."""
        tokens = prompt_tokens(self.prompts.pop(ticket))
        return self.scheduler.end(ticket, now, read=PromptRead(tokens, None, tokens / PROMPT_RATE))

    def started(self, now: float, grants) -> None:
        for grant in grants:
            who, asked = self.asked[grant.ticket]
            length = BATCH_SECONDS if who == JOB else QUESTION_SECONDS
            if who != JOB:
                self.waits.append(now - asked)
            self.intervals.append((asked, now))
            self.busy.append((now, now + length))
            self.at(now + length, "end", grant.ticket)


def simulate(job_class: str, reading: bool, seconds: float, gap: float = 0.0,
             bounds: Bounds | None = None) -> tuple[list[float], float]:
    """Run the load; return the people's waits and the slot use while anything waited (bounds: the settings')."""
    bounds = bounds or Bounds()
    specs = [ServerSpec("a", 2, 1), ServerSpec("b", 2, 1)]
    scheduler = PacedScheduler(specs, bounds, gap=gap) if gap else Scheduler(specs, bounds)
    for server in scheduler.servers.values():
        server.warm(MODEL, Loaded({}))
    run = Run(scheduler, job_class)
    stop = PEOPLE_START + seconds
    for _ in range(24):
        run.at(0.0, "job")
    for i in range(4):
        who = f"person-{i}"
        if reading:
            run.at(PEOPLE_START + i * ASK_EVERY / 4, "ask", who)
        else:  # on a beat whether answered or not, as the benchmark's people (workload.py): the same swings
            for beat in beats(LOAD, who, PEOPLE_START + i * ASK_EVERY / 4, seconds):
                run.at(beat, "ask", who)
    for tick in range(int((stop + 10) / TICK)):
        run.at(tick * TICK, "tick")
    while run.events:
        now, _, what, who = heapq.heappop(run.events)
        if what == "job" and now < stop:
            run.ask(now, JOB)
        elif what == "ask" and (now < stop or not reading):
            run.ask(now, who)
        elif what == "tick":
            run.started(now, scheduler.dispatch(now))
        elif what == "end":
            asker = run.asked[who][0]
            run.started(now, run.end(now, who))
            if asker == JOB:
                run.at(now, "job")
            elif reading:
                run.at(now + ASK_EVERY, "ask", asker)
    return run.waits, _use_while_waiting(run, stop)


def _prompt(label: str, filler: int) -> Chain:
    """A one-message chat as the benchmark sends it: its label, the shared instruction, filler words."""
    text = f"{label}\n{INSTRUCTION} " + "w " * filler
    return chain_of("/api/chat", {"messages": [{"role": "user", "content": text}]})


def _use_while_waiting(run: Run, stop: float) -> float:
    busy = waited = 0.0
    for step in range(int(PEOPLE_START / TICK), int(stop / TICK)):
        now = step * TICK
        if any(asked <= now < started for asked, started in run.intervals):
            busy += sum(1 for start, end in run.busy if start <= now < end) / 4
            waited += 1
    return busy / waited if waited else math.nan


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="how long people ask (default 45)")
    parser.add_argument("--yield-within", type=float, default=Bounds().yield_within,
                        help="scheduling.yield_within: seconds a question may wait so a much longer answer starts "
                             "first (default %(default)g; 0: strict order)")
    parser.add_argument("--pace", type=float, action="append", default=[],
                        help="also try holding the job's starts this many seconds apart (may be repeated)")
    args = parser.parse_args()
    print(f"{'people':8} {'job class':12} {'pace':>5}  {'asked':>5}  {'wait p50 / p95 / max s':>22}  slot use")
    for reading in (False, True):
        for job_class in ("interactive", "batch"):
            for gap in (0.0, *args.pace):
                waits, use = simulate(job_class, reading, args.seconds, gap, Bounds(yield_within=args.yield_within))
                figures = f"{_p(waits, .5):.2f} / {_p(waits, .95):.2f} / {max(waits):.2f}"
                print(f"{'reading' if reading else 'on beat':8} {job_class:12} {gap:5.1f}  {len(waits):5}  "
                      f"{figures:>22}  {use:.1%}")


if __name__ == "__main__":
    main()
