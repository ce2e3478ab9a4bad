"""Calls that come together are served as one, and every caller gets its answer whatever befalls the leader."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ollama_proxy.access.together import Together, _Call

BOUND = 5.0  # seconds any wait here may take before the test fails


class Killed(BaseException):
    """What a greenlet killed as its client leaves meets (``GreenletExit`` is a BaseException too)."""


def _until(condition) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.001)


class Recorded:
    """A ``serve`` that answers each item doubled and keeps every batch it was given."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        return [item * 2 for item in items]


def _call_in_threads(together: Together, items: list[int]) -> tuple[dict, list[threading.Thread]]:
    """Call ``together`` with each item from a thread of its own; return what each got (answer or error)."""
    got: dict[int, object] = {}

    def call(item: int) -> None:
        try:
            got[item] = together(item)
        except BaseException as exc:  # noqa: BLE001 - what the caller met is the finding
            got[item] = exc

    threads = [threading.Thread(target=call, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    return got, threads


def _joined(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a caller still waits"


def test_one_caller_alone_is_served_alone_after_one_pause():
    serve, pauses = Recorded(), []
    together = Together(serve, lambda: pauses.append(1))
    assert together(21) == 42
    assert together(5) == 10
    assert serve.batches == [[21], [5]] and len(pauses) == 2


def test_callers_that_come_while_the_leader_pauses_are_served_in_one_call_each_its_own_answer():
    serve, release = Recorded(), threading.Event()
    together = Together(serve, lambda: release.wait(BOUND))
    got, threads = _call_in_threads(together, [1])
    _until(lambda: together._leading)
    more, others = _call_in_threads(together, [2, 3, 4])
    _until(lambda: len(together._waiting) == 4)
    release.set()
    _joined(threads + others)
    assert {**got, **more} == {1: 2, 2: 4, 3: 6, 4: 8}
    assert len(serve.batches) == 1 and sorted(serve.batches[0]) == [1, 2, 3, 4]


def test_every_caller_of_a_call_that_fails_meets_its_error_and_the_next_call_is_served():
    release, calls = threading.Event(), []

    def serve(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise LookupError("the store is down")
        return items

    together = Together(serve, lambda: release.wait(BOUND))
    got, threads = _call_in_threads(together, [1])
    _until(lambda: together._leading)
    more, others = _call_in_threads(together, [2])
    _until(lambda: len(together._waiting) == 2)
    release.set()
    _joined(threads + others)
    assert all(isinstance(error, LookupError) for error in {**got, **more}.values())
    assert together(3) == 3  # nothing is left leading


def _first_leader_killed_at_its_pause():
    """A pause that holds the first leader until ``release`` is set, then kills it; ``entered`` once it holds."""
    entered, release = threading.Event(), threading.Event()

    def pause():
        if not entered.is_set():
            entered.set()
            release.wait(BOUND)
            raise Killed
    return entered, release, pause


def test_a_leader_killed_as_it_pauses_hands_its_followers_to_one_of_them():
    entered, release, pause = _first_leader_killed_at_its_pause()
    serve = Recorded()
    together = Together(serve, pause)
    got, threads = _call_in_threads(together, [1])
    entered.wait(BOUND)
    more, others = _call_in_threads(together, [2, 3])
    _until(lambda: len(together._waiting) == 3)
    release.set()
    _joined(threads + others)
    assert isinstance(got[1], Killed) and more == {2: 4, 3: 6}
    assert [sorted(batch) for batch in serve.batches] == [[2, 3]]  # the dead leader's item is not served
    assert together(4) == 8


def test_a_leader_killed_as_it_serves_hands_what_it_did_not_answer_to_the_next():
    started, release, killed = threading.Event(), threading.Event(), []

    def serve(items):
        if not killed:
            killed.append(list(items))
            started.set()
            release.wait(BOUND)
            raise Killed
        return [item * 2 for item in items]

    together = Together(serve, lambda: None)
    got, threads = _call_in_threads(together, [1])
    started.wait(BOUND)
    more, others = _call_in_threads(together, [2])  # comes while the first serves: the next call's
    _until(lambda: len(together._waiting) == 1)
    release.set()
    _joined(threads + others)
    assert isinstance(got[1], Killed) and more == {2: 4}
    assert together(3) == 6


def test_what_a_killed_leader_was_serving_is_not_served_again_where_twice_would_do_it_twice():
    """A charge whose commit may have landed as its leader died is answered ``interrupted``, not written again."""
    started, release, served = threading.Event(), threading.Event(), []

    def serve(items):
        served.append(list(items))
        if len(served) == 1:
            started.set()
            release.wait(BOUND)
            raise Killed
        return [item * 2 for item in items]

    pause = threading.Event()
    together = Together(serve, lambda: pause.wait(BOUND), interrupted=lambda: LookupError("cut short"))
    got, threads = _call_in_threads(together, [1])
    _until(lambda: together._leading)
    more, others = _call_in_threads(together, [2])  # served with the first
    _until(lambda: len(together._waiting) == 2)
    pause.set()
    started.wait(BOUND)
    later, last = _call_in_threads(together, [3])  # comes as the first serves: led next
    _until(lambda: len(together._waiting) == 1)
    release.set()
    _joined(threads + others + last)
    assert isinstance(got[1], Killed) and isinstance(more[2], LookupError) and later == {3: 6}
    assert served == [[1, 2], [3]]


def test_a_caller_killed_as_it_was_told_to_lead_passes_the_lead_on():
    entered, release, pause = _first_leader_killed_at_its_pause()
    serve = Recorded()
    together = Together(serve, pause)
    got, threads = _call_in_threads(together, [1])
    entered.wait(BOUND)
    dead = _Call(9)  # a caller that came next, and is killed at its wait (below)
    with together._lock:
        together._waiting.append(dead)
    more, others = _call_in_threads(together, [2])
    _until(lambda: len(together._waiting) == 3)
    release.set()  # the leader is killed: the lead goes to the first that waits, the dead one
    _until(lambda: dead.lead)
    together._leave(dead)  # what the killed caller does on its way out
    _joined(threads + others)
    assert isinstance(got[1], Killed) and more == {2: 4} and serve.batches == [[2]]


def test_a_caller_killed_as_it_waits_is_not_served():
    serve, release = Recorded(), threading.Event()
    together = Together(serve, lambda: release.wait(BOUND))
    got, threads = _call_in_threads(together, [1])
    _until(lambda: together._leading)
    dead = _Call(9)
    with together._lock:
        together._waiting.append(dead)
    together._leave(dead)
    release.set()
    _joined(threads)
    assert got == {1: 2} and serve.batches == [[1]]


@pytest.mark.parametrize("callers", [1, 8])
def test_many_rounds_of_callers_each_get_their_own_answer(callers):
    serve = Recorded()
    together = Together(serve, lambda: time.sleep(0.001))
    for round_ in range(20):
        items = [round_ * 100 + n for n in range(callers)]
        got, threads = _call_in_threads(together, items)
        _joined(threads)
        assert got == {item: item * 2 for item in items}
    assert sum(len(batch) for batch in serve.batches) == 20 * callers


GATHERED_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import gevent
from ollama_proxy.access.together import Together
from ollama_proxy.greenlets import let_others_run

batches = []

def serve(items):
    batches.append(len(items))
    return [item * 2 for item in items]

together = Together(serve, let_others_run)
callers = [gevent.spawn(together, n) for n in range(16)]
gevent.joinall(callers, timeout=5)
assert [caller.value for caller in callers] == [n * 2 for n in range(16)], [caller.value for caller in callers]

errors = []

def in_the_hub():  # the hub may not wait: there it lets nothing run, and says nothing
    try:
        let_others_run()
    except BaseException as exc:
        errors.append(exc)

gevent.get_hub().loop.run_callback(in_the_hub)
gevent.sleep(0.05)
assert not errors, errors
print(batches)
"""


def test_greenlets_ready_at_once_in_a_gevent_worker_are_served_in_one_call():
    """As in a gunicorn gevent worker (patched): the leader's pause lets the other ready greenlets join it (and
    a pause asked of in the hub itself is none)."""
    done = subprocess.run([sys.executable, "-c", GATHERED_UNDER_GEVENT], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[16]"
