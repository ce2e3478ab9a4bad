"""The audit trail: each change with who, where from, before and after, in its transaction; nothing erased."""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from ollama_proxy.store import Actor, Conflict, DatabaseError, Missing, Store, StoreError
from ollama_proxy.store.keys import PREFIX_LENGTH

ANN = Actor("ann", "admin", "10.0.0.7")
OPS = Actor("ops", "cli", "gpu-box, ssh from 10.0.0.9")


def test_a_keys_life_is_recorded_with_who_from_where_and_what_changed(store):
    key, secret = store.create_key("alice", by=OPS, models=["llama3*"], rpm=60)
    store.update_key("alice", by=ANN, rpm=120, web=True)
    store.update_key("alice", by=ANN, rpm=120)  # no change: no entry
    store.delete_key("alice", by=OPS)
    made, changed, deleted = store.audit_trail()
    assert (made.actor, made.actor_kind, made.origin, made.action, made.target) == (
        "ops", "cli", "gpu-box, ssh from 10.0.0.9", "key.create", "alice")
    assert made.before is None and made.after["prefix"] == key.prefix == secret[:PREFIX_LENGTH]
    assert made.after["models"] == ["llama3*"] and made.after["rpm"] == 60 and made.after["enabled"] is True
    assert (changed.actor, changed.actor_kind, changed.origin, changed.action) == ("ann", "admin", "10.0.0.7",
                                                                                   "key.update")
    assert (changed.before, changed.after) == ({"rpm": 60, "web": False}, {"rpm": 120, "web": True})
    assert changed.change == "rpm: 60 -> 120; web: false -> true"
    assert (deleted.action, deleted.after, deleted.before["rpm"]) == ("key.delete", None, 120)
    assert made.ts <= changed.ts <= deleted.ts and made.ts.tzinfo is not None


def test_no_entry_holds_a_keys_secret_or_its_hash(store):
    _, secret = store.create_key("alice", by=OPS)
    with store.engine.connect() as connection:
        secret_hash = connection.execute(text("SELECT secret_hash FROM api_keys")).scalar()
    store.update_key("alice", by=OPS, enabled=False)
    store.delete_key("alice", by=OPS)
    written = json.dumps([entry.__dict__ for entry in store.audit_trail()], default=str)
    assert secret[PREFIX_LENGTH:] not in written and secret_hash not in written and "secret_hash" not in written
    assert secret[:PREFIX_LENGTH] in written  # the prefix names the key, as the keys list does


def test_a_change_refused_leaves_no_entry_and_an_entry_never_comes_without_its_change(store):
    store.create_key("alice", by=OPS)
    with pytest.raises(Conflict):
        store.create_key("alice", by=ANN)
    with pytest.raises(Missing):
        store.update_key("nobody", by=ANN, enabled=False)
    with pytest.raises(Missing):
        store.delete_key("nobody", by=ANN)
    with pytest.raises(StoreError, match="Actor"):
        store.update_key("alice", by="ann", enabled=False)  # a name is not an Actor
    assert [entry.action for entry in store.audit_trail()] == ["key.create"]
    assert store.get_key("alice").enabled is True


def test_a_change_must_name_who_makes_it():
    for method in ("create_key", "update_key", "delete_key", "set_alias", "delete_alias", "set_override",
                   "delete_override"):
        parameter = inspect.signature(getattr(Store, method)).parameters["by"]
        assert parameter.default is parameter.empty and parameter.kind is parameter.KEYWORD_ONLY, method


def test_aliases_and_overrides_are_recorded_with_their_values_before_and_after(store):
    store.set_alias("gpt-4o", "llama3.2", by=ANN)
    store.set_alias("gpt-4o", "qwen3:8b", by=ANN)
    store.delete_alias("gpt-4o", by=OPS)
    store.set_override("llama3.2", {"num_ctx": 8192}, by=ANN)
    store.set_override("llama3.2", {"num_ctx": 8192}, {"num_gpu": 1}, by=ANN)
    store.delete_override("llama3.2", by=ANN)
    entries = [(e.action, e.target, e.before, e.after) for e in store.audit_trail()]
    assert entries == [
        ("alias.set", "gpt-4o", None, {"target": "llama3.2"}),
        ("alias.set", "gpt-4o", {"target": "llama3.2"}, {"target": "qwen3:8b"}),
        ("alias.delete", "gpt-4o", {"target": "qwen3:8b"}, None),
        ("override.set", "llama3.2", None, {"defaults": {"num_ctx": 8192}, "enforce": {}}),
        ("override.set", "llama3.2", {"enforce": {}}, {"enforce": {"num_gpu": 1}}),
        ("override.delete", "llama3.2", {"defaults": {"num_ctx": 8192}, "enforce": {"num_gpu": 1}}, None),
    ]


def test_sign_ins_are_recorded_and_the_trail_is_read_by_period_and_newest_first(store):
    store.record_event(ANN, "sign-in", "ann")
    store.record_event(Actor("an unknown user name", "admin", "10.0.0.66"), "sign-in failed", "an unknown user name")
    store.create_key("alice", by=ANN)
    assert [e.action for e in store.audit_trail(newest_first=True, limit=2)] == ["key.create", "sign-in failed"]
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert store.audit_trail(since=later) == [] and len(store.audit_trail(until=later)) == 3


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"])
def test_the_database_refuses_to_change_or_erase_an_entry(store, statement):
    store.create_key("alice", by=OPS)
    with pytest.raises(Exception, match="append-only"), store.engine.begin() as connection:
        connection.execute(text(statement))
    assert [(e.actor, e.action) for e in store.audit_trail()] == [("ops", "key.create")]


def test_an_actor_is_an_admin_an_oidc_subject_or_the_clis_user():
    with pytest.raises(StoreError, match="admin, oidc, cli"):
        Actor("ann", "robot", "here")


def test_a_failing_database_is_the_stores_error(store):
    store.engine.dispose()
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit"))
    with pytest.raises(DatabaseError):
        store.create_key("alice", by=OPS)
    assert store.get_key("alice") is None  # the key went with its entry
