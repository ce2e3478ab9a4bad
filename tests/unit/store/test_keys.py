from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ollama_proxy.store import Conflict, Missing, StoreError
from ollama_proxy.store.keys import PREFIX_LENGTH, hash_secret
from ollama_proxy.store.schema import api_keys
from tests.actors import TESTER

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_create_returns_the_key_and_a_secret_kept_only_as_a_hash(store):
    key, secret = store.create_key("alice", models=["llama3*", "qwen3:*"], rpm=60, tpm=100000, by=TESTER)
    assert secret.startswith("op-") and len(secret) > 40
    assert key.prefix == secret[:PREFIX_LENGTH] and len(key.prefix) == 11
    assert (key.name, key.scope, key.models, key.rpm, key.tpm) == ("alice", "generate", ("llama3*", "qwen3:*"),
                                                                   60, 100000)
    assert key.enabled and key.expires_at is None and key.last_used_at is None
    assert key.created_at.tzinfo is not None
    with store.engine.connect() as connection:
        stored = connection.execute(select(api_keys)).one()
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in [str(v) for v in stored]


def test_find_key_by_secret(store):
    key, secret = store.create_key("alice", by=TESTER)
    other, _ = store.create_key("bob", scope="manage", by=TESTER)
    assert store.find_key(secret) == key
    assert store.find_key(secret + "x") is None
    assert store.find_key(secret[:-1]) is None
    assert store.find_key(key.prefix) is None
    assert store.find_key("not-a-managed-key") is None
    assert other.scope == "manage"


def test_keys_sharing_a_prefix_are_told_apart_by_hash(store):
    key, secret = store.create_key("alice", by=TESTER)
    twin = key.prefix + "another-secret-with-the-same-visible-part"
    store.update_key("alice", by=TESTER)  # no change: still there
    with store.engine.begin() as connection:
        connection.execute(api_keys.insert().values(
            name="twin", prefix=key.prefix, secret_hash=hash_secret(twin), scope="generate", models=[],
            enabled=True, created_at=NOW))
    assert store.find_key(secret).name == "alice"
    assert store.find_key(twin).name == "twin"


def test_names_are_unique(store):
    store.create_key("alice", by=TESTER)
    with pytest.raises(Conflict, match="alice"):
        store.create_key("alice", by=TESTER)


@pytest.mark.parametrize("fields, message", [
    ({"scope": "admin"}, "scope"),
    ({"models": "llama3*"}, "models"),
    ({"models": [""]}, "models"),
    ({"rpm": 0}, "rpm"),
    ({"tpm": 1.5}, "tpm"),
    ({"rpm": True}, "rpm"),
    ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),
])
def test_bad_values_are_refused(store, fields, message):
    with pytest.raises(StoreError, match=message):
        store.create_key("alice", **fields, by=TESTER)
    assert store.list_keys() == []


def test_update_changes_fields_and_returns_the_key(store):
    store.create_key("alice", by=TESTER)
    later = NOW + timedelta(days=30)
    key = store.update_key("alice", enabled=False, models=["qwen3:*"], rpm=None, tpm=5, expires_at=later, by=TESTER)
    assert (key.enabled, key.models, key.rpm, key.tpm) == (False, ("qwen3:*",), None, 5)
    assert key.expires_at == later and key.last_used_at is None
    assert store.get_key("alice") == key
    store.touch_key("alice", NOW)
    assert store.get_key("alice").last_used_at == NOW


def test_update_refuses_the_name_the_secret_and_absent_keys(store):
    store.create_key("alice", by=TESTER)
    with pytest.raises(StoreError, match="secret_hash"):
        store.update_key("alice", secret_hash="0" * 64, by=TESTER)
    with pytest.raises(Missing):
        store.update_key("nobody", enabled=False, by=TESTER)
    with pytest.raises(Missing):
        store.update_key("nobody", by=TESTER)


def test_delete(store):
    _, secret = store.create_key("alice", by=TESTER)
    store.create_key("bob", by=TESTER)
    store.delete_key("alice", by=TESTER)
    assert [k.name for k in store.list_keys()] == ["bob"]
    assert store.find_key(secret) is None
    with pytest.raises(Missing):
        store.delete_key("alice", by=TESTER)


@pytest.mark.parametrize("enabled, expires_at, usable", [
    (True, None, True),
    (True, NOW + timedelta(seconds=1), True),
    (True, NOW, False),
    (True, NOW - timedelta(days=1), False),
    (False, None, False),
])
def test_usable(store, enabled, expires_at, usable):
    store.create_key("alice", expires_at=expires_at, by=TESTER)
    key = store.update_key("alice", enabled=enabled, by=TESTER)
    assert key.usable(NOW) is usable


def test_expiry_keeps_its_moment_across_time_zones(store):
    plus_two = timezone(timedelta(hours=2))
    key, _ = store.create_key("alice", expires_at=datetime(2030, 5, 1, 12, 0, tzinfo=plus_two), by=TESTER)
    assert key.expires_at == datetime(2030, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert key.expires_at.utcoffset() == timedelta(0)


def test_a_key_keeps_its_own_chat_log_choice(store):
    assert store.create_key("plain", by=TESTER)[0].chat_log is None  # as chat_logs.enabled says
    assert store.create_key("logged", chat_log=True, by=TESTER)[0].chat_log is True
    assert store.update_key("logged", chat_log=False, by=TESTER).chat_log is False
    with pytest.raises(StoreError, match="chat_log"):
        store.create_key("odd", chat_log="yes", by=TESTER)


def test_a_key_has_a_share_of_the_gpus_weight_one_interactive_untrusted_unless_told(store):
    plain, _ = store.create_key("plain", by=TESTER)
    assert (plain.weight, plain.klass, plain.trusted_frontend) == (1.0, "interactive", False)
    batch, _ = store.create_key("nightly", weight=2.5, klass="batch", trusted_frontend=True, by=TESTER)
    assert store.get_key("nightly") == batch
    assert (batch.weight, batch.klass, batch.trusted_frontend) == (2.5, "batch", True)
    assert store.update_key("nightly", weight=1, klass="interactive", by=TESTER).klass == "interactive"


@pytest.mark.parametrize("fields, named", [
    ({"weight": 0}, "weight"), ({"weight": -1}, "weight"), ({"weight": 1001}, "weight"), ({"weight": True}, "weight"),
    ({"weight": "2"}, "weight"), ({"klass": "urgent"}, "class"), ({"trusted_frontend": "yes"}, "trusted_frontend"),
])
def test_a_share_that_makes_no_sense_is_refused(store, fields, named):
    with pytest.raises(StoreError, match=named):
        store.create_key("odd", **fields, by=TESTER)


def test_a_key_may_use_the_web_only_when_allowed(store):
    assert store.create_key("plain", by=TESTER)[0].web is False
    allowed, _ = store.create_key("searcher", web=True, by=TESTER)
    assert allowed.web is True and store.get_key("searcher") == allowed
    assert store.update_key("searcher", web=False, by=TESTER).web is False
    with pytest.raises(StoreError, match="web must be true or false"):
        store.create_key("odd", web="yes", by=TESTER)


def test_a_key_made_for_oneself_keeps_its_owner_and_is_listed_by_owner_and_team(store):
    store.create_team("red", by=TESTER)
    mine, _ = store.create_key("mine", team="red", owner="sub-mia", by=TESTER)
    store.create_key("theirs", team="red", owner="sub-max", by=TESTER)
    store.create_key("admins", by=TESTER)
    assert mine.owner == "sub-mia" and store.get_key("admins").owner is None
    assert [k.name for k in store.list_keys(owner="sub-mia")] == ["mine"]
    assert [k.name for k in store.list_keys(team="red")] == ["mine", "theirs"]
    assert [k.name for k in store.list_keys(team="red", owner="sub-max")] == ["theirs"]
    assert [k.name for k in store.list_keys()] == ["admins", "mine", "theirs"]
    with pytest.raises(StoreError, match="only a service key changes hands"):
        store.update_key("mine", owner="sub-max", by=TESTER)
    for odd in ("", "x" * 256, 7):
        with pytest.raises(StoreError, match="owner"):
            store.create_key("odd", owner=odd, by=TESTER)
    made = next(entry for entry in store.audit_trail() if entry.target == "mine")
    assert made.after["owner"] == "sub-mia"  # the trail says whose it is


@pytest.mark.parametrize("name", ["alice", "generate#0", "manage#12", "metrics#3"])
def test_a_key_may_not_take_a_tokens_name(store, name):
    """The file's tokens (named, or by list and position) and the keys count rate limits, shares and usage by
    name: a key that took a token's name would share them."""
    with pytest.raises(Conflict, match="a token of the configuration file"):
        store.create_key(name, reserved={"alice"}, by=TESTER)
    assert store.list_keys() == []
    store.create_key("generate#x", reserved={"alice"}, by=TESTER)  # no list's position


def test_someone_owns_at_most_the_cap_of_keys(store):
    store.create_team("research", by=TESTER)
    for n in range(3):
        store.create_key(f"mia-{n}", team="research", owner="mia", max_owned=3, by=TESTER)
    with pytest.raises(StoreError, match="at most 3 keys"):
        store.create_key("mia-3", team="research", owner="mia", max_owned=3, by=TESTER)
    store.create_key("leo-0", team="research", owner="leo", max_owned=3, by=TESTER)
    store.delete_key("mia-0", by=TESTER)
    store.create_key("mia-3", team="research", owner="mia", max_owned=3, by=TESTER)
    assert [k.name for k in store.list_keys(owner="mia")] == ["mia-1", "mia-2", "mia-3"]


def test_a_service_key_names_its_responsible_person_who_may_hand_it_over_to_another(store):
    store.create_team("red", by=TESTER)
    with pytest.raises(StoreError, match="names the person responsible"):
        store.create_key("webui", team="red", service=True, by=TESTER)
    with pytest.raises(StoreError, match="service must be true or false"):
        store.create_key("webui", team="red", owner="sub-mia", service="yes", by=TESTER)
    made, _ = store.create_key("webui", team="red", owner="sub-mia", service=True, max_owned=1, by=TESTER)
    assert (made.owner, made.service) == ("sub-mia", True)
    with pytest.raises(StoreError, match="at most 1 keys"):  # it counts toward its responsible person's cap
        store.create_key("mia-laptop", team="red", owner="sub-mia", max_owned=1, by=TESTER)
    assert store.update_key("webui", owner="sub-max", by=TESTER).owner == "sub-max"
    with pytest.raises(StoreError, match="names the person responsible"):
        store.update_key("webui", owner=None, by=TESTER)
    entries = [entry for entry in store.audit_trail() if entry.target == "webui"]
    assert [(e.action, e.after["owner"]) for e in entries] == [("key.create", "sub-mia"), ("key.update", "sub-max")]
    assert entries[0].after["service"] is True  # the trail says it is a service key, and who answers for it
