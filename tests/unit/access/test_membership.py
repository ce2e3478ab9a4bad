"""A key made on My keys lapses with its owner's membership: the table of why, then through auth's cache."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.access.auth import ManagedKeys
from ollama_proxy.access.membership import lapse, lapses
from ollama_proxy.config import AuthSettings, StoreSettings
from ollama_proxy.errors import Unauthorized
from ollama_proxy.store import ApiKey, Member, open_store
from tests.actors import TESTER
from tests.fakes.clock import ManualClock

NOW = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)
DAY = 86400.0


def member(team: str | None = "red", confirmed: float = 60, lost: str | None = None, role: str = "member") -> Member:
    """A member of ``team``, confirmed ``confirmed`` seconds ago, lost for ``lost`` if that says why."""
    at = NOW - timedelta(seconds=confirmed)
    return Member("sub-mia", "mia", role, team, at, at, NOW if lost else None, lost, not lost)


@pytest.mark.parametrize("found, team, why", [
    pytest.param(member(), "red", None, id="confirmed-in-its-team"),
    pytest.param(member(confirmed=DAY), "red", None, id="confirmed-at-the-bound-itself"),
    pytest.param(member(confirmed=DAY + 1), "red",
                 "lapsed: the identity provider last confirmed its owner in team 'red' at 2026-11-21 19:59 UTC, "
                 "longer ago than admin.oidc.membership_max_age; signing in to the admin page again confirms it",
                 id="not-confirmed-within-the-bound"),
    pytest.param(member(lost="refresh token refused: invalid_grant"), "red",
                 "lapsed: the identity provider no longer vouches for its owner (refresh token refused: "
                 "invalid_grant)", id="lost"),
    pytest.param(member(team="blue"), "red",
                 "lapsed: at the identity provider its owner is in team 'blue', not in team 'red'", id="moved"),
    pytest.param(member(team=None), "red",
                 "lapsed: at the identity provider its owner is in no team, not in team 'red'", id="in-no-team"),
    pytest.param(member(team=None, role="admin"), "red", None, id="an-admin-answers-for-every-teams-keys"),
    pytest.param(member(team=None, role="admin"), None, None, id="an-admins-key-in-no-team"),
    pytest.param(member(team=None, role="team_admin"), "red",
                 "lapsed: at the identity provider its owner is in no team, not in team 'red'",
                 id="a-team-admin-put-in-no-team"),
    pytest.param(member(team=None, role="admin", lost="refresh token refused: invalid_grant"), "red",
                 "lapsed: the identity provider no longer vouches for its owner (refresh token refused: "
                 "invalid_grant)", id="an-admin-lost"),
    pytest.param(None, "red",
                 "lapsed: the identity provider never confirmed its owner here; signing in to the admin page "
                 "again confirms it", id="never-seen"),
])
def test_why_a_key_lapses(found, team, why):
    assert lapse(found, team, NOW, DAY) == why


def key(name: str, owner: str | None, team: str = "red") -> ApiKey:
    return ApiKey(1, name, "op-abcdefgh", "generate", (), None, None, None, True, NOW, None, team=team, owner=owner)


def test_lapses_names_the_owned_keys_that_lapsed_alone():
    keys = [key("admins", None), key("mia-laptop", "sub-mia"), key("mia-old", "sub-mia", team="blue")]
    assert lapses(keys, [member()], NOW, DAY) == {
        "mia-old": "lapsed: at the identity provider its owner is in team 'red', not in team 'blue'"}


@pytest.fixture
def store(tmp_path):
    opened = open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))
    yield opened
    opened.close()


def test_auth_refuses_a_lapsed_key_within_its_cache_bound_and_at_once_past_the_membership_bound(store):
    clock = ManualClock(1000.0)
    keys = ManagedKeys(lambda: store, AuthSettings((), (), key_cache_seconds=5, key_cache_size=10), clock,
                       membership_max_age=DAY)
    store.create_team("red", by=TESTER)
    _, secret = store.create_key("mia-laptop", team="red", owner="sub-mia", by=TESTER)
    with pytest.raises(Unauthorized, match="never confirmed its owner"):
        keys.find(secret, NOW)
    assert store.get_key("mia-laptop").last_used_at is None  # a refused key was not used
    clock.advance(6)
    store.confirm_member("sub-mia", name="mia", role="member", team="red", refresh_token=None, now=NOW)
    assert keys.find(secret, NOW).owner == "sub-mia"
    assert store.get_key("mia-laptop").last_used_at == NOW
    with pytest.raises(Unauthorized, match="longer ago than admin.oidc.membership_max_age"):
        keys.find(secret, NOW + timedelta(seconds=DAY + 1))  # from the cache: the bound holds at once
    store.lose_member("sub-mia", "signed in with no role and no team", by=TESTER, now=NOW)
    assert keys.find(secret, NOW).owner == "sub-mia"  # the cache holds what it read for key_cache_seconds
    clock.advance(6)
    with pytest.raises(Unauthorized, match="no longer vouches for its owner"):
        keys.find(secret, NOW)
