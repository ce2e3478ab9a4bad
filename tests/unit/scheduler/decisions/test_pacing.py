"""A job's long answers started apart while people ask, so that they end apart and a question finds a slot soon."""

import pytest

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.pacing import Pacing
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec, Start

WINDOW = 30.0
DEFAULT_BOUNDS = Bounds()


def test_a_long_principal_is_held_to_its_pace_only_while_a_shorter_one_asks():
    pacing, known = Pacing(), {"job": 6.0, "twin": 6.0, "person": 0.6}

    def holds(now: float, model: str = "m") -> bool:
        return pacing.holds(model, "job", expected=6.0, slots=4, now=now, window=WINDOW, slot_seconds=known.get)

    pacing.started("m", "job", now=0.0)
    assert not holds(0.5)  # alone
    pacing.asked("m", "job", now=0.5, window=WINDOW)
    pacing.asked("m", "twin", now=0.5, window=WINDOW)
    assert not holds(0.5)  # beside one as long
    pacing.asked("m", "person", now=0.6, window=WINDOW)
    assert holds(1.0)
    assert not holds(1.5)  # 6 s / 4 slots passed
    assert not holds(1.0 + WINDOW)  # the person left
    assert not holds(1.0, model="other")


def test_who_is_shorter_is_read_when_it_matters_not_when_they_asked():
    """A newcomer counts as a person's first question until its first answer ends; then as long as it is."""
    pacing, known = Pacing(), {"job": 6.0}
    pacing.started("m", "job", now=0.0)
    pacing.asked("m", "newcomer", now=0.1, window=WINDOW)
    assert pacing.holds("m", "job", 6.0, 4, now=1.0, window=WINDOW, slot_seconds=known.get)
    known["newcomer"] = 6.0  # its first request ended: as long as the job's
    assert not pacing.holds("m", "job", 6.0, 4, now=1.0, window=WINDOW, slot_seconds=known.get)


def _scheduler(bounds: Bounds = DEFAULT_BOUNDS) -> Scheduler:
    s = Scheduler([ServerSpec("gpu1", num_parallel=2), ServerSpec("gpu2", num_parallel=2)], bounds,
                  Estimates(default_slot_seconds=6.0))
    for server in s.servers.values():
        server.warm("m", Loaded({}))
    return s


def _ticket(id: str, who: str, klass: str = "interactive") -> Ticket:
    return Ticket(id, Share(who, 1.0, klass), "m", ("gpu1", "gpu2"))


def _starts(s: Scheduler, job_class: str) -> list[float]:
    """A job keeps eight requests of 6 s waiting while a person asks a 0.6 s question every 3 s; return when the
    job's requests started."""
    s.estimates.ended("m", 6.0, 0.0, "job")
    s.estimates.ended("m", 0.6, 0.0, "person")
    length = {"job": 6.0, "person": 0.6}
    starts, count = [], 0
    for tick in range(400):
        now = tick * 0.05
        grants = []
        for run in [r for r in s.running.values() if now - r.started >= length[r.ticket.share.principal] - 1e-9]:
            grants += s.end(run.ticket.id, now)
        while sum(1 for t in s.waiting.values() if t.share.principal == "job") < 8:
            count += 1
            grants += s.submit(_ticket(f"j{count}", "job", job_class), now)
        if tick % 60 == 0:
            grants += s.submit(_ticket(f"p{tick}", "person"), now)
        grants += s.dispatch(now)
        starts += [now for g in grants if g.ticket.startswith("j")]
    return starts


def test_beside_a_person_a_jobs_answers_start_a_quarter_of_their_length_apart_on_four_slots():
    starts = _starts(_scheduler(), "interactive")
    assert starts[:4] == [0.0] * 4  # before anyone else asked: as fast as slots free
    apart = [b - a for a, b in zip(starts[4:], starts[5:], strict=False)]
    assert len(apart) >= 6 and min(apart) >= 1.5 - 1e-9


def test_batch_work_is_not_paced_it_leaves_people_a_slot_instead():
    starts = _starts(_scheduler(), "batch")
    assert len(starts) >= 10 and any(b - a < 1.0 for a, b in zip(starts[4:], starts[5:], strict=False))


def test_no_headroom_for_people_no_pace_either():
    starts = _starts(_scheduler(Bounds(interactive_headroom=0)), "interactive")
    assert len(starts) >= 10 and any(b - a < 1.0 for a, b in zip(starts[4:], starts[5:], strict=False))


def _beside_a_question(*slots: int) -> Scheduler:
    """Servers of these slots, the first warm, a person's first question running there (shorter, for all we know)."""
    s = Scheduler([ServerSpec(f"gpu{n + 1}", num_parallel=count) for n, count in enumerate(slots)], Bounds(),
                  Estimates(default_slot_seconds=6.0, default_load_seconds=1.0))
    s.servers["gpu1"].warm("m", Loaded({}))
    s.submit(_ticket("p0", "person"), now=0.0)
    return s


@pytest.mark.parametrize(("known", "started"), [(False, ["j0", "j1"]), (True, ["j0"])])
def test_a_principal_is_paced_only_once_its_answers_have_ended(known, started):
    s = _beside_a_question(3)
    if known:
        s.estimates.ended("m", 6.0, 0.0, "job")
    assert [g.ticket for n in range(2) for g in s.submit(_ticket(f"j{n}", "job"), now=1.0)] == started


def test_a_load_is_not_held_to_the_pace():
    s = _beside_a_question(2, 2)
    s.estimates.ended("m", 6.0, 0.0, "job")
    grants = [g for n in range(3) for g in s.submit(_ticket(f"j{n}", "job"), now=1.0)]
    assert [g.ticket for g in grants] == ["j0", "j1"]  # j1 loads gpu2 at once; j2 waits there for its pace
    assert grants[1].placement.server == "gpu2" and grants[1].placement.start is not Start.WARM


def test_no_pace_while_batch_work_waits_nor_for_a_batch_newcomer():
    """Interactive work goes ahead of batch work whatever its pace; and a batch key is no one a pace keeps a
    slot for."""
    s = _beside_a_question(6)
    s.estimates.ended("m", 6.0, 0.0, "job")
    batch = [g.ticket for n in range(5) for g in s.submit(_ticket(f"b{n}", "batch-key", "batch"), now=0.5)]
    assert batch == ["b0", "b1", "b2", "b3"]  # b4 waits: one slot is kept for people
    assert [g.ticket for n in range(2) for g in s.submit(_ticket(f"j{n}", "job"), now=1.0)] == ["j0"]
    assert [g.ticket for g in s.end("b0", now=1.1)] == ["j1"]  # though j0 started just now
    s = Scheduler([ServerSpec("gpu1", num_parallel=4)], Bounds(), Estimates(default_slot_seconds=6.0))
    s.servers["gpu1"].warm("m", Loaded({}))
    s.estimates.ended("m", 6.0, 0.0, "job")
    s.submit(_ticket("b0", "batch-key", "batch"), now=0.0)
    s.end("b0", now=0.1)
    assert [g.ticket for n in range(2) for g in s.submit(_ticket(f"j{n}", "job"), now=1.0)] == ["j0", "j1"]
