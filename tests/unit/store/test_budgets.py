"""Budgets in the store: calendar periods in a time zone, set and cleared with their audit entries, charges exact."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import Missing, StoreError, open_store
from ollama_proxy.store.budgets import _charge_rows, period_bounds
from tests.actors import TESTER

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("period, now, start, end", [
    ("day", datetime(2026, 11, 24, 23, 30, tzinfo=UTC), datetime(2026, 11, 24, 23, tzinfo=UTC),  # 00:30 in Berlin
     datetime(2026, 11, 25, 23, tzinfo=UTC)),
    ("week", datetime(2026, 11, 26, 12, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC),  # from Monday
     datetime(2026, 11, 29, 23, tzinfo=UTC)),
    ("month", datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 2, 28, 23, tzinfo=UTC),  # March began at CET
     datetime(2026, 3, 31, 22, tzinfo=UTC)),  # and ends at CEST: an hour shorter in UTC
    ("day", datetime(2026, 3, 29, 12, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC),  # a 23-hour day
     datetime(2026, 3, 29, 22, tzinfo=UTC)),
])
def test_a_period_is_the_calendar_one_of_the_zone(period, now, start, end):
    assert period_bounds(period, now, BERLIN) == (start, end)


def test_a_budget_is_set_replaced_listed_and_cleared_with_its_audit_entries(store):
    store.create_team("research", by=TESTER)
    store.create_key("alice", by=TESTER)
    store.set_budget("team", "research", period="month", unit="gpu_seconds", amount=720_000, by=TESTER)
    store.set_budget("team", "research", period="month", unit="gpu_seconds", amount=360_000, mode="soft", by=TESTER)
    store.set_budget("key", "alice", period="day", unit="tokens", amount=100_000, mode="shadow", by=TESTER)
    listed = [(b.named, b.period, b.unit, b.amount, b.mode) for b in store.list_budgets()]
    assert listed == [("key 'alice'", "day", "tokens", 100_000.0, "shadow"),
                      ("team 'research'", "month", "gpu_seconds", 360_000.0, "soft")]
    with pytest.raises(Missing):
        store.clear_budgets("key", "alice", period="week", by=TESTER)
    assert store.clear_budgets("team", "research", by=TESTER) == 1
    entries = [(e.action, e.target, e.before, e.after) for e in store.audit_trail() if e.action.startswith("budget")]
    assert entries[:2] == [
        ("budget.set", "team research", None,
         {"period": "month", "unit": "gpu_seconds", "amount": 720_000.0, "mode": "hard"}),
        ("budget.set", "team research", {"period": "month", "unit": "gpu_seconds", "amount": 720_000.0, "mode": "hard"},
         {"period": "month", "unit": "gpu_seconds", "amount": 360_000.0, "mode": "soft"})]
    assert entries[-1][0] == "budget.clear" and entries[-1][3] is None


@pytest.mark.parametrize("holder_kind, holder, fields, error", [
    ("team", "nobody", {}, Missing), ("key", "nobody", {}, Missing), ("crew", "x", {}, StoreError),
    ("team", "research", {"period": "year"}, StoreError), ("team", "research", {"unit": "dollars"}, StoreError),
    ("team", "research", {"mode": "strict"}, StoreError), ("team", "research", {"amount": -1}, StoreError),
])
def test_nonsense_budgets_are_refused(store, holder_kind, holder, fields, error):
    store.create_team("research", by=TESTER)
    with pytest.raises(error):
        store.set_budget(holder_kind, holder, by=TESTER, **{"period": "day", "unit": "tokens", "amount": 10, **fields})
    assert store.list_budgets() == []


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
def test_a_budget_and_its_spend_die_with_their_holder(store, kind):
    """A new key or team of a deleted one's name starts clean: no budget, nothing spent."""
    store.create_team("lab", by=TESTER)
    store.create_key("bot", team="lab", by=TESTER)
    holder = "bot" if kind == "key" else "lab"
    budget = store.set_budget(kind, holder, period="day", unit="tokens", amount=100, by=TESTER)
    start = datetime(2026, 11, 25, tzinfo=UTC)
    store.charge([(budget.slot, start, 70.0)])
    store.delete_key("bot", by=TESTER)
    if kind == "team":
        store.delete_team("lab", by=TESTER)
    assert store.list_budgets() == []
    store.charge([(budget.slot, start, 5.0)])  # a request of the deleted key, still running, lands late
    if kind == "team":
        store.create_team("lab", by=TESTER)
    store.create_key("bot", team="lab", by=TESTER)
    assert store.list_budgets() == []
    assert store.spent([(budget.slot, start)]) == {(budget.slot, start): (0.0, 0, 0.0)}
    assert ("budget.clear", f"{kind} {holder}") in [(e.action, e.target) for e in store.audit_trail()]


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


def test_a_persons_budget_is_set_for_someone_who_owns_a_key_and_outlives_their_keys(store):
    store.create_team("research", by=TESTER)
    with pytest.raises(Missing, match="no key is owned by a person 'mia'"):
        store.set_budget("person", "mia", period="day", unit="tokens", amount=100, by=TESTER)
    store.create_key("mia-laptop", team="research", owner="mia", by=TESTER)
    store.create_key("ops-bot", by=TESTER)
    budget = store.set_budget("person", "mia", period="day", unit="tokens", amount=100, by=TESTER)
    assert budget.named == "person 'mia'"
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert [row["holder"] for row in store.standings(UTC, now, team="research")] == ["mia"]  # her team's admin
    store.delete_key("mia-laptop", by=TESTER)
    assert store.list_budgets() == [budget]  # a new key of hers is held to it at once


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
