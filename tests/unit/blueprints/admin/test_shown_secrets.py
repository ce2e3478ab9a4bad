"""A new key's secret between the create form and the page that shows it: sealed in the store, opened once."""

from __future__ import annotations

import pytest

from ollama_proxy.blueprints.admin.shown_secrets import CREATED, hold_secret, seal, take_secret, unseal

SECRET = "op-" + "A" * 43


def test_sealing_hides_the_secret_and_the_pad_opens_it():
    sealed, pad = seal(SECRET)
    assert len(sealed) == len(pad) == len(SECRET) and SECRET.encode() not in (sealed, pad)
    assert unseal(sealed, pad) == SECRET
    assert seal(SECRET)[1] != pad  # a fresh pad each time


def test_a_pad_of_another_length_opens_nothing():
    sealed, pad = seal(SECRET)
    with pytest.raises(ValueError):
        unseal(sealed, pad[:-1])


def test_a_held_secret_is_taken_once_and_only_by_its_key(store):
    session = {}
    hold_secret(session, store, "alice", SECRET, 60)
    assert set(session[CREATED]) == {"name", "handle", "pad"} and SECRET not in str(session)
    assert take_secret(session, store, "alice") == SECRET
    assert session == {} and take_secret(session, store, "alice") is None
    hold_secret(session, store, "alice", SECRET, 60)
    assert take_secret(session, store, "bob") is None
    assert session[CREATED]["name"] == "alice"  # another key's page leaves it to be shown on alice's
    assert take_secret(session, store, "alice") == SECRET and session == {}


def test_a_secret_held_the_way_an_older_version_did_is_dropped(store):
    session = {CREATED: {"name": "alice", "secret": SECRET}}
    assert take_secret(session, store, "alice") is None and session == {}
