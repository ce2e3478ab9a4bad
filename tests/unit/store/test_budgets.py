"""Budgets in the store: calendar periods in a time zone, set and cleared with their audit entries, held by
their holder."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from ollama_proxy.store import Missing, StoreError
from ollama_proxy.store.budgets import period_bounds
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
