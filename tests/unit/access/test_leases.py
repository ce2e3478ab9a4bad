"""A worker's leases: what they admit without the store, what they charge as they end, what a failure keeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.access.leases import LEASE_SHARE, LEAST_REQUESTS, Leases, lease_size
from ollama_proxy.config import StoreSettings
from ollama_proxy.store import DatabaseError, open_store
from ollama_proxy.store.errors import MayHaveLanded
from tests.actors import TESTER
from tests.fakes.clock import ManualClock
from tests.migrated import migrated_sqlite

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    opened = open_store(StoreSettings(migrated_sqlite(tmp_path / "store.db"), busy_timeout=5.0))
    opened.create_team("lab", by=TESTER)
    yield opened
    opened.close()


class Reached:
    """The store a worker reaches, which the test swaps: the real one, or one whose renewals fail."""

    def __init__(self, store):
        self.store = store

    def __call__(self):
        return self.store


class Failing:
    def __init__(self, error: DatabaseError):
        self.error = error

    def renew_leases(self, *args):
        raise self.error


def _worker(store, clock, lost=None) -> Leases:
    """A worker's leases on ``store`` (or on what a ``Reached`` gives)."""
    reach = store if isinstance(store, Reached) else lambda: store
    leases = Leases(1.0, reach, [].append if lost is None else lost.append, clock)
    leases._start = lambda: None  # no renewing greenlet: each test renews when it means to
    return leases


def _lease(leases: Leases, budget) -> None:
    """Have ``leases`` lease ``budget``, as a worker does once a request read it and charged it 10 tokens."""
    leases.standings([(budget, START, END)])
    leases.learn([(budget.slot, START, 10.0)])
    assert leases.renew()


def _budget(store, amount=16_000.0):
    return store.set_budget("team", "lab", period="month", unit="tokens", amount=amount, by=TESTER)


@pytest.mark.parametrize("amount, spent, leased, typical, size", [
    (16_000, 0, 0, 100, 1000),  # a sixteenth of what is left unleased
    (16_000, 8000, 4000, 10, 250),
    (16_000, 0, 0, None, 0),  # no charge seen yet: what a lease must be worth is unknown
    (16_000, 0, 0, 1000 / LEAST_REQUESTS + 1, 0),  # worth fewer than LEAST_REQUESTS typical charges
    (16_000, 16_000, 0, 0, 0),  # spent
    (16_000, 15_000, 2000, 0, 0),  # overshot by the requests that ran
])
def test_a_lease_is_a_share_of_what_is_left_unleased_worth_several_typical_charges(amount, spent, leased, typical,
                                                                                    size):
    assert LEASE_SHARE == 1 / 16
    assert lease_size(amount, spent, leased, typical) == size


def test_a_worker_leases_once_a_charge_is_known_then_admits_and_charges_without_the_store(store):
    budget, clock = _budget(store), ManualClock()
    leases = _worker(store, clock)
    periods = [(budget, START, END)]
    assert leases.standings(periods) is None  # not leased: the request reads; it is wanted
    leases.learn([(budget.slot, START, 100.0)])
    store.charge([(budget.slot, START, 100.0)])  # that request's own charge, as it ends
    assert leases.renew()
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][::2] == (100.0, (16_000 - 100) / 16)
    standing, = leases.standings(periods)
    assert (standing.spent, standing.leased, standing.spent_out) == (100.0, 0.0, False)
    for _ in range(10):  # 993.75 leased: ten requests of 100 start on it (the last overshoots it), then none
        assert leases.standings(periods) is not None
        leases.charge([(budget.slot, START, 100.0)], {})
    assert leases.standings(periods) is None
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][0] == 100.0  # nothing added yet
    assert leases.renew()  # the ten land; it is leased again
    spent, _, leased = store.spent([(budget.slot, START)])[(budget.slot, START)]
    assert (spent, leased) == (1100.0, (16_000 - 1100) / 16)
    standing, = leases.standings(periods)
    assert standing.spent == 1100.0


def test_a_lease_admits_nothing_once_its_time_is_over_nor_for_a_budget_changed_since(store):
    budget, clock = _budget(store), ManualClock()
    leases = _worker(store, clock)
    _lease(leases, budget)
    assert leases.standings([(budget, START, END)]) is not None
    raised = _budget(store, amount=32_000.0)
    assert leases.standings([(raised, START, END)]) is None
    clock.now += 1.0
    assert leases.standings([(budget, START, END)]) is None


def test_a_budget_near_its_end_is_leased_to_no_one_and_not_asked_for_again_for_a_leases_time(store):
    budget, clock = _budget(store, amount=1000.0), ManualClock()
    leases = _worker(store, clock)
    leases.standings([(budget, START, END)])
    leases.learn([(budget.slot, START, 10.0)])  # a sixteenth of 1000 is worth fewer than 8 such charges
    assert leases.renew()
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][2] == 0.0
    assert leases.standings([(budget, START, END)]) is None
    assert not leases._wanted  # asked for again only a lease's time later
    clock.now += 1.0
    assert leases.standings([(budget, START, END)]) is None and leases._wanted


def test_two_workers_lease_apart_and_a_read_counts_both_as_spent(store):
    budget, clock = _budget(store), ManualClock()
    first, second = _worker(store, clock), _worker(store, clock)
    for leases in (first, second):
        _lease(leases, budget)
    standing, = second.standings([(budget, START, END)])
    assert standing.leased == 1000.0  # the first's sixteenth of 16,000
    spent, _, leased = store.spent([(budget.slot, START)])[(budget.slot, START)]
    assert (spent, leased) == (0.0, 1000.0 + 15_000 / 16)


def test_a_worker_that_stops_adds_what_it_holds_and_gives_its_leases_back(store):
    budget, clock = _budget(store), ManualClock()
    leases = _worker(store, clock)
    _lease(leases, budget)
    leases.charge([(budget.slot, START, 42.0)], {})
    leases.close()
    assert store.spent([(budget.slot, START)])[(budget.slot, START)] == (42.0, 0, 0.0)


def test_charges_the_store_does_not_take_wait_for_the_next_renewal_and_are_counted_lost_only_at_the_end(store):
    budget, clock, lost, reached = _budget(store), ManualClock(), [], Reached(store)
    leases = _worker(reached, clock, lost)
    _lease(leases, budget)
    leases.charge([(budget.slot, START, 42.0)], {})
    broken = Failing(DatabaseError("the store cannot be reached", "connection refused"))

    reached.store = broken
    assert not leases.renew()
    assert leases.standings([(budget, START, END)]) is None  # nothing is leased: requests read (and get a 503)
    reached.store = store
    assert leases.renew()
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][0] == 42.0
    leases.charge([(budget.slot, START, 8.0)], {})  # one more on no lease: held all the same
    reached.store = broken
    leases.close()
    assert lost == [1]
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][0] == 42.0


def test_a_dead_workers_lease_lapses_after_twice_its_time(store):
    budget, clock = _budget(store), ManualClock()
    leases = _worker(store, clock)
    _lease(leases, budget)
    later = datetime.now(timezone.utc) + timedelta(seconds=2.5)
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][2] == 1000.0
    assert store.spent([(budget.slot, START)], later)[(budget.slot, START)][2] == 0.0


def test_a_request_that_outlived_its_lease_has_its_charge_added_at_once(store):
    budget, clock = _budget(store), ManualClock()
    leases = _worker(store, clock)
    _lease(leases, budget)
    assert leases.standings([(budget, START, END)]) is not None  # a long answer starts on the lease
    clock.now += 1.0
    assert leases.renew()  # the lease ends unused (the answer still runs): given back, not leased again
    leases.charge([(budget.slot, START, 500.0)], {})
    assert leases._wake.is_set()
    assert leases.renew()
    assert store.spent([(budget.slot, START)])[(budget.slot, START)] == (500.0, 0, 0.0)


def test_charges_whose_commit_was_cut_are_counted_lost_once_never_sent_again(store):
    budget, clock, lost, reached = _budget(store), ManualClock(), [], Reached(store)
    leases = _worker(reached, clock, lost)
    _lease(leases, budget)
    leases.charge([(budget.slot, START, 42.0)], {})
    leases.charge([(budget.slot, START, 8.0)], {})

    reached.store = Failing(MayHaveLanded("server closed the connection unexpectedly", "the connection was lost"))
    leases.close()
    assert lost == [2]
    reached.store = store
    assert leases.renew()  # nothing is held to send again
    assert store.spent([(budget.slot, START)])[(budget.slot, START)][0] == 0.0
