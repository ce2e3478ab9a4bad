"""A key's secret rotated: the same key (id, settings, budgets, usage) with a new secret, the old one kept a while."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ollama_proxy.store import Missing, StoreError
from ollama_proxy.store.keys import PREFIX_LENGTH, expiry_after
from ollama_proxy.store.schema import api_keys
from tests.actors import TESTER


def test_a_rotated_key_keeps_everything_but_its_secret(store):
    store.create_team("research", by=TESTER)
    key, old = store.create_key("alice", models=["llama3*"], rpm=60, tpm=1000, team="research", weight=2.0,
                                expires_at=expiry_after(date(2999, 1, 31)), by=TESTER)
    store.set_budget("key", "alice", period="month", unit="tokens", amount=5000, by=TESTER)
    rotated, new = store.rotate_key("alice", by=TESTER)
    assert new != old and new.startswith("op-") and rotated.prefix == new[:PREFIX_LENGTH]
    same = ("id", "name", "models", "rpm", "tpm", "team", "weight", "expires_at", "created_at", "owner", "scope")
    assert {f: getattr(rotated, f) for f in same} == {f: getattr(key, f) for f in same}
    assert [b.amount for b in store.list_budgets()] == [5000]
    with store.engine.connect() as connection:
        stored = connection.execute(select(api_keys)).one()
    assert old not in [str(v) for v in stored] and new not in [str(v) for v in stored]


def test_the_old_secret_works_until_the_grace_period_ends(store):
    _, old = store.create_key("alice", by=TESTER)
    before = datetime.now(timezone.utc)
    rotated, new = store.rotate_key("alice", grace=timedelta(hours=1), by=TESTER)
    assert store.find_key(new).name == store.find_key(old).name == "alice"
    found = store.find_secret(old)
    assert before + timedelta(hours=1) <= found.retired_at <= datetime.now(timezone.utc) + timedelta(hours=1)
    assert not found.refused(before) and found.refused(before + timedelta(hours=1, seconds=1))
    assert store.find_secret(new).retired_at is None
    assert rotated.previous_works(before) and not rotated.previous_works(found.retired_at)


def test_without_grace_the_old_secret_is_refused_at_once_and_said_to_be_rotated(store):
    _, old = store.create_key("alice", by=TESTER)
    store.rotate_key("alice", by=TESTER)
    assert store.find_key(old) is None
    assert store.find_secret(old).refused(datetime.now(timezone.utc))


def test_rotating_again_ends_the_first_grace_at_once(store):
    _, first = store.create_key("alice", by=TESTER)
    _, second = store.rotate_key("alice", grace=timedelta(days=1), by=TESTER)
    _, third = store.rotate_key("alice", grace=timedelta(days=1), by=TESTER)
    assert store.find_key(first) is None
    assert store.find_key(second).name == store.find_key(third).name == "alice"


def test_a_rotation_is_audited_with_its_grace_never_a_secret(store):
    key, old = store.create_key("alice", by=TESTER)
    rotated, new = store.rotate_key("alice", grace=timedelta(minutes=30), by=TESTER)
    entry = store.audit_trail()[-1]
    assert (entry.action, entry.target, entry.before) == ("key.rotate", "alice", {"prefix": key.prefix})
    assert entry.after["prefix"] == rotated.prefix and entry.after["grace_seconds"] == 1800
    assert entry.after["old_secret_until"].startswith(str(rotated.previous_until.date()))
    assert old not in entry.change and new not in entry.change


def test_a_rotation_of_no_key_or_with_a_negative_grace_is_refused(store):
    with pytest.raises(Missing, match="no key named 'nobody'"):
        store.rotate_key("nobody", by=TESTER)
    store.create_key("alice", by=TESTER)
    with pytest.raises(StoreError, match="grace"):
        store.rotate_key("alice", grace=timedelta(seconds=-1), by=TESTER)


def test_the_audit_trail_shows_an_expiry_as_the_day_given(store):
    store.create_key("alice", expires_at=expiry_after(date(2027, 1, 31)), by=TESTER)
    store.update_key("alice", expires_at=datetime(2027, 3, 1, 12, 30, tzinfo=timezone.utc), by=TESTER)
    made, changed = store.audit_trail()
    assert made.after["expires_at"] == "2027-01-31"
    assert changed.after["expires_at"] == "2027-03-01T12:30:00+00:00"
