"""A new key's sealed secret in the store: taken once, by its key's page alone, never once gone by."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from ollama_proxy.store import StoreError
from ollama_proxy.store.schema import shown_secrets


def soon(seconds: float = 60) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def rows(store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(shown_secrets)).scalar_one()


def test_a_held_secret_is_taken_once(store):
    store.hold_shown_secret("h1", "alice", b"\x00sealed\xff", until=soon())
    assert store.take_shown_secret("h1", "alice") == b"\x00sealed\xff"
    assert store.take_shown_secret("h1", "alice") is None
    assert rows(store) == 0


def test_a_secret_asked_for_by_another_keys_page_is_dropped_not_given(store):
    store.hold_shown_secret("h1", "alice", b"sealed", until=soon())
    assert store.take_shown_secret("h1", "bob") is None
    assert store.take_shown_secret("h1", "alice") is None
    assert store.take_shown_secret("unknown", "alice") is None


def test_a_secret_gone_by_is_never_given_and_the_next_hold_drops_it(store):
    store.hold_shown_secret("late", "alice", b"sealed", until=soon(-1))
    assert store.take_shown_secret("late", "alice") is None
    store.hold_shown_secret("left", "bob", b"sealed", until=soon(-1))  # its page never came
    store.hold_shown_secret("h2", "carol", b"sealed", until=soon())
    assert rows(store) == 1


def test_a_naive_moment_is_refused(store):
    with pytest.raises(StoreError, match="time zone"):
        store.hold_shown_secret("h1", "alice", b"sealed", until=datetime.now())


def _take_at_once(store, handle: str, takers: int) -> list[bytes | None]:
    got, start = [], threading.Barrier(takers)

    def take():
        start.wait()
        got.append(store.take_shown_secret(handle, "alice"))

    threads = [threading.Thread(target=take) for _ in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return got


def test_of_pages_taking_one_secret_at_once_one_gets_it(store):
    for round_ in range(5):
        store.hold_shown_secret(f"h{round_}", "alice", b"sealed", until=soon())
        assert sorted(_take_at_once(store, f"h{round_}", 4), key=bool) == [None, None, None, b"sealed"]
