"""Teams in the store: made, changed and deleted with their audit entries; keys join existing teams only."""

from __future__ import annotations

import pytest

from ollama_proxy.store import Conflict, Missing, StoreError
from tests.actors import TESTER


def test_a_team_is_made_with_its_share_models_and_limits_and_listed(store):
    made = store.create_team("research", by=TESTER, weight=3, klass="batch", models=["qwen3*", "llama3*"],
                             rpm=600, tpm=100_000)
    assert (made.name, made.weight, made.klass, made.models, made.rpm, made.tpm) == (
        "research", 3.0, "batch", ("qwen3*", "llama3*"), 600, 100_000)
    store.create_team("apps", by=TESTER)
    assert [t.name for t in store.list_teams()] == ["apps", "research"]
    assert store.get_team("apps").models == () and store.get_team("nobody") is None
    with pytest.raises(Conflict):
        store.create_team("apps", by=TESTER)


@pytest.mark.parametrize("fields, message", [
    ({"weight": 0}, "weight"), ({"klass": "urgent"}, "class"), ({"rpm": -1}, "rpm"), ({"models": "qwen3*"}, "models"),
])
def test_nonsense_is_refused_before_the_table(store, fields, message):
    with pytest.raises(StoreError, match=message):
        store.create_team("lab", by=TESTER, **fields)
    assert store.list_teams() == []


def test_a_key_joins_an_existing_team_only_and_may_move_or_leave(store):
    store.create_team("research", by=TESTER)
    with pytest.raises(Missing, match="teams create nowhere"):
        store.create_key("alice", by=TESTER, team="nowhere")
    assert store.get_key("alice") is None
    key, _ = store.create_key("alice", by=TESTER, team="research")
    assert key.team == "research"
    store.create_team("apps", by=TESTER)
    assert store.update_key("alice", by=TESTER, team="apps").team == "apps"
    with pytest.raises(Missing):
        store.update_key("alice", by=TESTER, team="nowhere")
    assert store.update_key("alice", by=TESTER, team=None).team is None


def test_a_team_with_keys_is_not_deleted_and_the_refusal_names_them(store):
    store.create_team("research", by=TESTER)
    store.create_key("bob", by=TESTER, team="research")
    store.create_key("alice", by=TESTER, team="research")
    with pytest.raises(StoreError, match="team 'research' still has keys: alice, bob"):
        store.delete_team("research", by=TESTER)
    for name in ("alice", "bob"):
        store.delete_key(name, by=TESTER)
    store.delete_team("research", by=TESTER)
    assert store.list_teams() == []
    with pytest.raises(Missing):
        store.delete_team("research", by=TESTER)


def test_a_teams_life_is_in_the_audit_trail(store):
    store.create_team("research", by=TESTER, rpm=10)
    store.update_team("research", by=TESTER, rpm=20, klass="batch")
    store.update_team("research", by=TESTER, rpm=20)  # no change: no entry
    with pytest.raises(StoreError, match="cannot change created_at"):
        store.update_team("research", by=TESTER, created_at=None)
    store.delete_team("research", by=TESTER)
    entries = [(e.action, e.before, e.after) for e in store.audit_trail()]
    assert [action for action, _, _ in entries] == ["team.create", "team.update", "team.delete"]
    assert entries[0][2]["rpm"] == 10 and entries[0][1] is None
    assert entries[1][1:] == ({"klass": "interactive", "rpm": 10}, {"klass": "batch", "rpm": 20})
    assert entries[2][1]["rpm"] == 20 and entries[2][2] is None
