"""A job's long answers started apart while people ask, so that they end apart and a question finds a slot soon."""

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.pacing import Pacing
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec

WINDOW = 30.0
DEFAULT_BOUNDS = Bounds()


def test_a_long_principal_is_held_to_its_pace_only_while_a_shorter_one_asks():
    pacing = Pacing()
    pacing.started("m", "job", now=0.0)
    assert not pacing.holds("m", "job", expected=6.0, slots=4, now=0.5, window=WINDOW)  # alone
    pacing.asked("m", "job", 6.0, now=0.5, window=WINDOW)
    pacing.asked("m", "twin", 6.0, now=0.5, window=WINDOW)
    assert not pacing.holds("m", "job", expected=6.0, slots=4, now=0.5, window=WINDOW)  # beside one as long
    pacing.asked("m", "person", 0.6, now=0.6, window=WINDOW)
    assert pacing.holds("m", "job", expected=6.0, slots=4, now=1.0, window=WINDOW)
    assert not pacing.holds("m", "job", expected=6.0, slots=4, now=1.5, window=WINDOW)  # 6 s / 4 slots passed
    assert not pacing.holds("m", "job", expected=6.0, slots=4, now=1.0 + WINDOW, window=WINDOW)  # the person left
    assert not pacing.holds("other", "job", expected=6.0, slots=4, now=1.0, window=WINDOW)


def test_a_person_whose_answers_are_not_known_yet_counts_as_shorter():
    pacing = Pacing()
    pacing.started("m", "job", now=0.0)
    pacing.asked("m", "newcomer", None, now=0.1, window=WINDOW)
    assert pacing.holds("m", "job", expected=6.0, slots=4, now=1.0, window=WINDOW)


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
