"""Managed keys through auth's per-worker caches, on a real SQLite store."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.access.auth import GENERATE, MANAGE, ManagedKeys, Principal, principal_of
from ollama_proxy.config import AuthSettings, StoreSettings
from ollama_proxy.errors import ProxyError, Unauthorized
from ollama_proxy.store import open_store
from ollama_proxy.store.keys import is_secret_shaped, new_secret
from tests.actors import TESTER
from tests.e2e.server import free_port
from tests.fakes.clock import ManualClock
from tests.migrated import migrated_sqlite

NOW = datetime.now(timezone.utc)
CACHE_SECONDS = 5
UNKNOWN_SECONDS = 60


class CountingStore:
    """The real store, counting what auth asks of it: a read per look-up, a write per last use."""

    def __init__(self, store):
        self.store = store
        self.calls: Counter = Counter()

    def find_secret(self, secret: str):
        self.calls["find_key"] += 1
        return self.store.find_secret(secret)

    def touch_key(self, name: str, when):
        self.calls["touch_key"] += 1
        return self.store.touch_key(name, when)

    def get_team(self, name: str):
        self.calls["get_team"] += 1
        return self.store.get_team(name)


@pytest.fixture
def store(tmp_path):
    opened = open_store(StoreSettings(migrated_sqlite(tmp_path / "store.db"), 5.0))
    yield opened
    opened.close()


@pytest.fixture
def counted(store):
    return CountingStore(store)


@pytest.fixture
def clock():
    return ManualClock(1000.0)


def managed_keys(counted: CountingStore, clock: ManualClock, key_cache_size: int = 100,
                 unknown_key_cache_size: int = 100) -> ManagedKeys:
    settings = AuthSettings((), (), key_cache_seconds=CACHE_SECONDS, key_cache_size=key_cache_size,
                            unknown_key_cache_seconds=UNKNOWN_SECONDS, unknown_key_cache_size=unknown_key_cache_size)
    return ManagedKeys(lambda: counted, settings, clock)


@pytest.fixture
def keys(counted, clock):
    return managed_keys(counted, clock)


def unknown_token() -> str:
    """Return a token shaped like a secret that no key has."""
    return new_secret()


def test_a_key_becomes_a_principal_with_its_models_and_limits(store, keys):
    key, secret = store.create_key("alice", models=["llama3*"], rpm=60, tpm=1000, by=TESTER)
    assert keys.find(secret, NOW) == Principal("alice", GENERATE, ("llama3*",), 60, 1000, key_id=key.id)
    assert keys.find(secret, NOW).id == f"key:{key.id}"
    _, manager = store.create_key("ops", scope=MANAGE, by=TESTER)
    assert keys.find(manager, NOW).may(MANAGE)


def test_unknown_and_foreign_tokens_are_none(store, keys):
    store.create_key("alice", by=TESTER)
    assert keys.find("op-" + "x" * 43, NOW) is None
    assert keys.find("a-yaml-token", NOW) is None


def test_last_use_is_recorded(store, keys):
    _, secret = store.create_key("alice", by=TESTER)
    keys.find(secret, NOW)
    assert store.get_key("alice").last_used_at == NOW


@pytest.mark.parametrize("change, message", [
    ({"enabled": False}, "key 'alice' is disabled"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "key 'alice' expired"),
])
def test_a_disabled_or_expired_key_is_refused(store, keys, change, message):
    _, secret = store.create_key("alice", by=TESTER)
    store.update_key("alice", **change, by=TESTER)
    with pytest.raises(Unauthorized, match=message):
        keys.find(secret, NOW)


def test_expiry_is_checked_on_every_request_even_when_cached(store, keys):
    _, secret = store.create_key("alice", expires_at=NOW + timedelta(minutes=1), by=TESTER)
    assert keys.find(secret, NOW) is not None
    with pytest.raises(Unauthorized, match="expired"):
        keys.find(secret, NOW + timedelta(minutes=2))


def test_a_disabled_key_stops_within_the_cache_bound(store, keys, clock):
    _, secret = store.create_key("alice", by=TESTER)
    assert keys.find(secret, NOW) is not None
    store.update_key("alice", enabled=False, by=TESTER)
    clock.advance(CACHE_SECONDS - 1)
    assert keys.find(secret, NOW) is not None  # cached: the database is not asked every request
    clock.advance(1)
    with pytest.raises(Unauthorized, match="disabled"):
        keys.find(secret, NOW)


def test_a_deleted_key_stops_within_the_cache_bound(store, keys, clock):
    _, secret = store.create_key("alice", by=TESTER)
    assert keys.find(secret, NOW) is not None
    store.delete_key("alice", by=TESTER)
    clock.advance(CACHE_SECONDS - 1)
    assert keys.find(secret, NOW) is not None
    clock.advance(1)
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


def test_a_store_that_cannot_be_opened_is_a_503_too():
    def cannot_open():  # a worker's first use of the store opens it: the database may be down just then
        return open_store(StoreSettings(f"postgresql://postgres@127.0.0.1:{free_port()}/gone", 5.0))

    keys = ManagedKeys(cannot_open, AuthSettings((), (), key_cache_seconds=1, key_cache_size=10))
    with pytest.raises(ProxyError) as caught:
        keys.find("op-" + "y" * 43, NOW)
    assert caught.value.status == 503


# --- The caches under a flood of made-up tokens -------------------------------------------------


def test_a_flood_of_unknown_tokens_leaves_a_valid_key_in_its_cache(store, counted, clock):
    keys = managed_keys(counted, clock, key_cache_size=2, unknown_key_cache_size=2)
    _, secret = store.create_key("alice", by=TESTER)
    assert keys.find(secret, NOW).name == "alice"
    for _ in range(50):
        assert keys.find(unknown_token(), NOW) is None
    reads = counted.calls["find_key"]
    assert reads == 51
    assert keys.find(secret, NOW).name == "alice"
    assert counted.calls["find_key"] == reads  # served from the cache: the store was not asked


def test_an_unknown_token_asked_again_is_not_looked_up_again(counted, keys, clock):
    token = unknown_token()
    for _ in range(5):
        assert keys.find(token, NOW) is None
    assert counted.calls["find_key"] == 1
    clock.advance(UNKNOWN_SECONDS)  # its own time to live, not the keys'
    assert keys.find(token, NOW) is None
    assert counted.calls["find_key"] == 2


def test_the_unknown_tokens_remembered_are_bounded(counted, clock):
    keys = managed_keys(counted, clock, unknown_key_cache_size=2)
    first, second, third = unknown_token(), unknown_token(), unknown_token()
    for token in (first, second, third):
        keys.find(token, NOW)
    keys.find(third, NOW)
    assert counted.calls["find_key"] == 3  # the latest two are remembered...
    keys.find(first, NOW)
    assert counted.calls["find_key"] == 4  # ...the first was pushed out


@pytest.mark.parametrize("token", [
    "op-",
    "op-short",
    "op-" + "x" * 44,  # one character too many
    "op-" + "x" * 42 + "!",
    "op-" + "x" * 42 + "\u00e9",
    "op-" + "x" * 10_000,
    "OP-" + "x" * 43,
])
def test_a_token_not_shaped_like_a_secret_is_never_looked_up(counted, keys, token):
    assert keys.find(token, NOW) is None
    assert counted.calls == Counter()


def test_every_secret_made_is_shaped_like_one():
    made = [new_secret() for _ in range(200)]
    assert all(is_secret_shaped(secret) for secret in made)
    assert not is_secret_shaped(made[0] + "\n")


@pytest.mark.parametrize("change", [{"enabled": False}, {"expires_at": NOW - timedelta(seconds=1)}])
def test_a_refused_key_is_read_but_never_written(store, counted, keys, change):
    _, secret = store.create_key("alice", by=TESTER)
    store.update_key("alice", **change, by=TESTER)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            keys.find(secret, NOW)
    assert counted.calls == Counter(find_key=1)
    assert store.get_key("alice").last_used_at is None


def test_an_unknown_token_writes_nothing(store, counted, keys):
    store.create_key("alice", by=TESTER)
    prefix = store.get_key("alice").prefix
    keys.find(prefix + secrets.token_urlsafe(32)[:35], NOW)  # alice's visible prefix, another secret
    assert counted.calls == Counter(find_key=1)
    assert store.get_key("alice").last_used_at is None


def test_a_key_allowed_cloud_models_becomes_a_principal_allowed_them(store, keys):
    _, plain = store.create_key("plain", web=True, by=TESTER)
    key, frontier = store.create_key("frontier", cloud=True, by=TESTER)
    assert keys.find(plain, NOW).cloud is False
    assert keys.find(frontier, NOW) == Principal("frontier", GENERATE, cloud=True, key_id=key.id)


def test_a_key_allowed_the_web_becomes_a_principal_allowed_it(store, keys):
    _, plain = store.create_key("plain", by=TESTER)
    key, searcher = store.create_key("searcher", web=True, by=TESTER)
    assert keys.find(plain, NOW).web is False
    assert keys.find(searcher, NOW) == Principal("searcher", GENERATE, web=True, key_id=key.id)


def test_a_key_of_a_team_gets_no_more_than_its_team(store):
    store.create_team("research", by=TESTER, weight=3, klass="batch", models=["qwen3*", "llama3*"], rpm=600)
    key, _ = store.create_key("alice", by=TESTER, models=["llama3*", "mistral*"], rpm=60, team="research")
    principal = principal_of(key, store.get_team("research"))
    assert (principal.team, principal.team_weight, principal.team_rpm, principal.rpm) == ("research", 3.0, 600, 60)
    assert principal.klass == "batch"  # the team's, though the key says interactive
    assert principal.may_use("llama3.2") and not principal.may_use("mistral:7b") and not principal.may_use("qwen3:8b")
    alone = principal_of(store.get_key("alice"), None)
    assert alone.may_use("mistral:7b") and alone.klass == "interactive" and alone.team is None


def test_a_key_or_team_made_again_under_its_name_is_another_principal(store):
    """Counted by their rows' ids, which SQLite gives again once deleted unless the table is AUTOINCREMENT."""
    def made() -> object:
        team = store.create_team("research", by=TESTER)
        key, _ = store.create_key("alice", by=TESTER, team="research")
        return principal_of(key, team)

    first = made()
    store.delete_key("alice", by=TESTER)
    store.delete_team("research", by=TESTER)
    second = made()
    assert (first.name, first.team) == (second.name, second.team) == ("alice", "research")
    assert first.id != second.id and first.team_ref != second.team_ref
    assert (second.id, second.team_ref) == (f"key:{second.key_id}", f"team:{second.team_id}")


def test_a_teams_change_reaches_its_keys_once_the_cache_forgets_them(store, counted, clock):
    store.create_team("research", by=TESTER, models=["llama3*"])
    _, secret = store.create_key("alice", by=TESTER, team="research")
    keys = managed_keys(counted, clock)
    assert keys.find(secret, NOW).team_models == ("llama3*",)
    store.update_team("research", by=TESTER, models=["qwen3*"])
    assert keys.find(secret, NOW).team_models == ("llama3*",)  # cached with its key
    assert counted.calls["get_team"] == 1
    clock.advance(CACHE_SECONDS + 1)
    assert keys.find(secret, NOW).team_models == ("qwen3*",)


def test_a_key_a_token_of_the_file_was_later_named_like_is_refused(store, counted, clock):
    """Keys are refused a token's name when made; a token added to the file later under a key's name must not
    share that key's limits, share and usage either."""
    _, secret = store.create_key("alice", by=TESTER)
    settings = AuthSettings((), (), key_cache_seconds=CACHE_SECONDS)
    keys = ManagedKeys(lambda: counted, settings, clock, token_names=frozenset({"alice"}))
    with pytest.raises(Unauthorized, match="name of a token of the configuration file"):
        keys.find(secret, NOW)


def test_a_rotated_key_answers_to_its_new_secret_and_its_old_one_until_the_grace_ends(store, keys):
    key, old = store.create_key("alice", rpm=60, by=TESTER)
    rotated, new = store.rotate_key("alice", grace=timedelta(hours=1), by=TESTER)
    assert new != old and rotated.id == key.id and rotated.rpm == 60
    assert keys.find(new, NOW).key_id == key.id
    assert keys.find(old, NOW).key_id == key.id
    with pytest.raises(Unauthorized, match="key 'alice' was rotated: this secret stopped working at"):
        keys.find(old, NOW + timedelta(hours=2))  # from the cache, yet at once once the grace has ended
    assert keys.find(new, NOW + timedelta(hours=2)).name == "alice"


def test_a_key_rotated_without_grace_refuses_its_old_secret(store, keys):
    _, old = store.create_key("alice", by=TESTER)
    _, new = store.rotate_key("alice", by=TESTER)
    with pytest.raises(Unauthorized, match="was rotated"):
        keys.find(old, datetime.now(timezone.utc))
    assert keys.find(new, datetime.now(timezone.utc)).name == "alice"
