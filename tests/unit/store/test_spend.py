"""Budgets' spending in the store: charges exact, held to the holder checked, and leases never more than is left."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from ollama_proxy.store.spend import _charge_rows
from tests.actors import TESTER

UTC = timezone.utc


SLOT = ("team", "research", "day", "tokens")
START = datetime(2026, 11, 24, tzinfo=UTC)


def test_charges_add_up_per_holder_period_and_unit_and_shadow_refusals_are_counted_beside(store):
    other = (SLOT[:3] + ("gpu_seconds",))
    store.charge([(SLOT, START, 120), (other, START, 2.5)])
    store.charge([(SLOT, START, 30)])
    store.note_refusal(SLOT, START)
    tomorrow = datetime(2026, 11, 25, tzinfo=UTC)
    assert store.spent([(SLOT, START), (other, START), (SLOT, tomorrow)]) == {
        (SLOT, START): (150.0, 1, 0.0), (other, START): (2.5, 0, 0.0), (SLOT, tomorrow): (0.0, 0, 0.0)}


def _charge_many(url: str, worker: int, count: int) -> None:
    store = open_store(StoreSettings(url, busy_timeout=30.0))
    try:
        for _ in range(count):
            store.charge([(SLOT, START, 7)])
    finally:
        store.close()


def test_processes_charging_at_once_lose_nothing(store_url, store):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_charge_many, [(store_url, worker, 50) for worker in range(4)])
    assert store.spent([(SLOT, START)])[(SLOT, START)] == (4 * 50 * 7.0, 0, 0.0)


@pytest.mark.parametrize("kind", ["key", "team"])
def test_a_charge_of_a_holder_made_again_meanwhile_is_not_the_new_ones(store, kind):
    """A request of a deleted key (team) that ends after a new one of its name was made charges nothing to it."""
    def made() -> int:
        team = store.create_team("lab", by=TESTER)
        key, _ = store.create_key("bot", team="lab", by=TESTER)
        budget = store.set_budget(kind, "bot" if kind == "key" else "lab", period="day", unit="tokens", amount=100,
                                  by=TESTER)
        assert store.list_budgets() == [budget] and budget.holder_id == (key.id if kind == "key" else team.id)
        return budget.holder_id

    old = made()
    slot, start = store.list_budgets()[0].slot, datetime(2026, 11, 25, tzinfo=UTC)
    store.delete_key("bot", by=TESTER)
    store.delete_team("lab", by=TESTER)
    new = made()
    assert new != old
    store.charge([(slot, start, 70.0)], {slot[:2]: old})  # the old one's request, ending now
    assert store.spent([(slot, start)])[(slot, start)] == (0.0, 0, 0.0)
    store.charge([(slot, start, 5.0)], {slot[:2]: new})
    assert store.spent([(slot, start)])[(slot, start)] == (5.0, 0, 0.0)


def test_requests_charged_together_each_add_theirs_and_a_moved_holders_charge_alone_is_dropped(store):
    """``charge_together``: one statement for several requests, as if each were charged alone."""
    team = store.create_team("lab", by=TESTER)
    key, _ = store.create_key("bot", team="lab", by=TESTER)
    store.create_key("gone", by=TESTER)
    start = datetime(2026, 11, 25, tzinfo=UTC)
    team_slot, key_slot, person_slot = (("team", "lab", "day", "tokens"), ("key", "bot", "day", "tokens"),
                                        ("person", "mia", "day", "gpu_seconds"))
    store.charge_together([
        ([(team_slot, start, 10.0), (key_slot, start, 10.0)], {("team", "lab"): team.id, ("key", "bot"): key.id}),
        ([(team_slot, start, 7.0), (person_slot, start, 1.5)], {("team", "lab"): team.id}),
        ([(key_slot, start, 1000.0)], {("key", "bot"): key.id + 100}),  # an older key of the name: not this one's
        ([(team_slot, start, 3.0)], {}),  # no id to hold it to
    ])
    assert store.spent([(team_slot, start), (key_slot, start), (person_slot, start)]) == {
        (team_slot, start): (20.0, 0, 0.0), (key_slot, start): (10.0, 0, 0.0), (person_slot, start): (1.5, 0, 0.0)}


def test_the_spend_of_many_periods_at_once_is_each_its_own(store):
    start = datetime(2026, 11, 25, tzinfo=UTC)
    slots = [(("key", f"k{n}", "day", "tokens"), start) for n in range(12)]
    store.charge_together([([(slot, at, float(n + 1))], {}) for n, (slot, at) in enumerate(slots)])
    later = datetime(2026, 11, 26, tzinfo=UTC)
    asked = [*slots, (slots[0][0], later), *slots[:3]]  # another period of one, and some asked twice
    assert store.spent(asked) == {**{slot: (float(n + 1), 0, 0.0) for n, slot in enumerate(slots)},
                                  (slots[0][0], later): (0.0, 0, 0.0)}


def _half_left(budget, spent: float, leased: float) -> float:
    return max(0.0, (budget.amount - spent - leased) / 2)


def test_a_lease_counts_as_spent_for_everyone_until_given_back_or_lapsed_and_its_charges_land_with_the_next(store):
    store.create_team("lab", by=TESTER)
    budget = store.set_budget("team", "lab", period="day", unit="tokens", amount=1000, by=TESTER)
    slot, start, now = budget.slot, datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC)
    until = now + timedelta(seconds=2)
    store.charge([(slot, start, 100.0)])
    held = [(budget, start)]
    assert store.renew_leases("w1", [], held, _half_left, now, until) == {(slot, start): (100.0, 0.0, 450.0)}
    assert store.spent([(slot, start)], now) == {(slot, start): (100.0, 0, 450.0)}
    # A second worker leases half of what neither spent nor leased.
    assert store.renew_leases("w2", [], held, _half_left, now, until) == {(slot, start): (100.0, 450.0, 225.0)}
    assert store.spent([(slot, start)], now)[(slot, start)][2] == 675.0
    # The first adds what its requests spent (one of a holder made again meanwhile: dropped) and leases again.
    charges = [([(slot, start, 30.0)], {("team", "lab"): budget.holder_id}),
               ([(slot, start, 5.0)], {("team", "lab"): -1})]
    assert store.renew_leases("w1", charges, held, _half_left, now, until) == {
        (slot, start): (130.0, 225.0, 322.5)}
    assert store.spent([(slot, start)], now) == {(slot, start): (130.0, 0, 547.5)}
    # Given back without another; the second's lapses once its time is past.
    assert store.renew_leases("w1", [], [], _half_left, now, until) == {}
    assert store.spent([(slot, start)], now)[(slot, start)][2] == 225.0
    assert store.spent([(slot, start)], until)[(slot, start)][2] == 0.0
    assert store.renew_leases("w3", [], held, _half_left, until, until) == {(slot, start): (130.0, 0.0, 435.0)}


def _lease_many(url: str, lessee: str, rounds: int, start: datetime, now: datetime) -> None:
    store = open_store(StoreSettings(url, busy_timeout=30.0))
    try:
        budget = store.list_budgets()[0]
        for _ in range(rounds):
            store.renew_leases(lessee, [([(budget.slot, start, 1.0)], {})], [(budget, start)], _half_left, now,
                               now + timedelta(hours=1))
    finally:
        store.close()


def test_processes_leasing_at_once_never_lease_more_than_is_left(store_url, store):
    store.create_team("lab", by=TESTER)
    budget = store.set_budget("team", "lab", period="day", unit="tokens", amount=1000, by=TESTER)
    start, now = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_lease_many, [(store_url, f"w{worker}", 25, start, now) for worker in range(4)])
    spent, _, leased = store.spent([(budget.slot, start)], now)[(budget.slot, start)]
    assert spent == 100.0  # every charge added once
    assert 0 < leased <= 1000 - spent


def test_charges_sent_together_add_to_their_rows_in_one_order_whatever_order_they_came_in():
    """Two transactions that lock the same rows in one order never wait for each other (no deadlock)."""
    day = datetime(2026, 11, 25, tzinfo=UTC)
    team, first, second = (("team", "lab", "day", "tokens"), ("key", "a", "day", "tokens"),
                           ("key", "b", "day", "tokens"))
    rows = _charge_rows([([(team, day, 1.0), (second, day, 2.0)], {}), ([(first, day, 3.0)], {("key", "a"): 7})])
    assert [(row["holder_kind"], row["holder"], row["spent"], row["holder_id"]) for row in rows] == [
        ("key", "a", 3.0, 7), ("key", "b", 2.0, None), ("team", "lab", 1.0, None)]
