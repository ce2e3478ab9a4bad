"""Managed keys through auth's per-worker cache, on a real SQLite store."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.auth import GENERATE, MANAGE, ManagedKeys, Principal
from ollama_proxy.config import AuthSettings, StoreSettings
from ollama_proxy.errors import ProxyError, Unauthorized
from ollama_proxy.store import open_store

NOW = datetime.now(timezone.utc)
CACHE_SECONDS = 0.3


@pytest.fixture
def store(tmp_path):
    opened = open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))
    yield opened
    opened.close()


@pytest.fixture
def keys(store):
    return ManagedKeys(lambda: store, AuthSettings((), (), key_cache_seconds=CACHE_SECONDS, key_cache_size=100))


def test_a_key_becomes_a_principal_with_its_models_and_limits(store, keys):
    _, secret = store.create_key("alice", models=["llama3*"], rpm=60, tpm=1000)
    assert keys.find(secret, NOW) == Principal("alice", GENERATE, ("llama3*",), 60, 1000)
    _, manager = store.create_key("ops", scope=MANAGE)
    assert keys.find(manager, NOW).may(MANAGE)


def test_unknown_and_foreign_tokens_are_none(store, keys):
    store.create_key("alice")
    assert keys.find("op-" + "x" * 43, NOW) is None
    assert keys.find("a-yaml-token", NOW) is None


def test_last_use_is_recorded(store, keys):
    _, secret = store.create_key("alice")
    keys.find(secret, NOW)
    assert store.get_key("alice").last_used_at == NOW


@pytest.mark.parametrize("change, message", [
    ({"enabled": False}, "key 'alice' is disabled"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "key 'alice' expired"),
])
def test_a_disabled_or_expired_key_is_refused(store, keys, change, message):
    _, secret = store.create_key("alice")
    store.update_key("alice", **change)
    with pytest.raises(Unauthorized, match=message):
        keys.find(secret, NOW)


def test_expiry_is_checked_on_every_request_even_when_cached(store, keys):
    _, secret = store.create_key("alice", expires_at=NOW + timedelta(minutes=1))
    assert keys.find(secret, NOW) is not None
    with pytest.raises(Unauthorized, match="expired"):
        keys.find(secret, NOW + timedelta(minutes=2))


def test_a_disabled_key_stops_within_the_cache_bound(store, keys):
    _, secret = store.create_key("alice")
    assert keys.find(secret, NOW) is not None
    store.update_key("alice", enabled=False)
    assert keys.find(secret, NOW) is not None  # cached: the database is not asked every request
    time.sleep(CACHE_SECONDS + 0.1)
    with pytest.raises(Unauthorized, match="disabled"):
        keys.find(secret, NOW)


def test_a_deleted_key_stops_within_the_cache_bound(store, keys):
    _, secret = store.create_key("alice")
    assert keys.find(secret, NOW) is not None
    store.delete_key("alice")
    assert keys.find(secret, NOW) is not None
    time.sleep(CACHE_SECONDS + 0.1)
    assert keys.find(secret, NOW) is None


def test_a_failing_database_is_a_503_not_a_traceback(tmp_path):
    broken = open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))
    broken.engine.dispose()
    (tmp_path / "store.db").unlink()
    (tmp_path / "store.db").mkdir()  # the file is now a directory: every query fails
    keys = ManagedKeys(lambda: broken, AuthSettings((), (), key_cache_seconds=1, key_cache_size=10))
    with pytest.raises(ProxyError) as caught:
        keys.find("op-" + "y" * 43, NOW)
    assert caught.value.status == 503
