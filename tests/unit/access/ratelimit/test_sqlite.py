"""The SQLite counter storage: the fixed-window contract, exact across processes."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ollama_proxy.access.ratelimit import sqlite as sqlite_storage
from ollama_proxy.access.ratelimit.sqlite import SQLiteStorage
from ollama_proxy.config import ConfigError

PROCESSES = 4
HITS_EACH = 50
LIMIT = 77


def test_the_scheme_is_registered_with_limits(tmp_path):
    storage = storage_from_string(f"sqlite:///{tmp_path / 'c.db'}")
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == str(tmp_path / "c.db")
    assert storage.check()


def test_counts_expire_with_their_window(tmp_path):
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}")
    assert storage.incr("k", 1, amount=3) == 3
    assert storage.incr("k", 1) == 4
    assert storage.get("k") == 4
    assert time.time() < storage.get_expiry("k") <= time.time() + 1
    time.sleep(1.05)
    assert storage.get("k") == 0
    assert storage.incr("k", 60) == 1  # a new window, not 5
    storage.clear("k")
    assert storage.get("k") == 0


def test_reset_and_purge_remove_counters(tmp_path, monkeypatch):
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.incr("a", 60)
    storage.incr("b", 60)
    assert storage.reset() == 2
    monkeypatch.setattr(sqlite_storage, "PURGE_EVERY", 2)
    storage.incr("old", 0)  # already expired
    storage.incr("new", 60)  # the second increment purges
    assert storage._query("SELECT key FROM counters") == [("new",)]


def _hammer(url: str, results) -> None:
    limiter = FixedWindowRateLimiter(storage_from_string(url))
    item = RateLimitItemPerMinute(LIMIT)
    results.put(sum(limiter.hit(item, "alice") for _ in range(HITS_EACH)))


def test_processes_hitting_at_once_admit_exactly_the_limit(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(url, results)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    admitted = sum(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(10)
    assert admitted == LIMIT
    assert SQLiteStorage(url).get(RateLimitItemPerMinute(LIMIT).key_for("alice")) == PROCESSES * HITS_EACH


def test_window_stats_through_the_strategy(tmp_path):
    limiter = FixedWindowRateLimiter(SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}"))
    item = RateLimitItemPerSecond(2)
    assert limiter.hit(item, "bob") and limiter.hit(item, "bob")
    assert not limiter.hit(item, "bob")
    stats = limiter.get_window_stats(item, "bob")
    assert stats.remaining == 0
    assert 0 < stats.reset_time - time.time() <= 1


@pytest.mark.parametrize("name, made, said", [
    ("new/dirs/c.db", None, None),
    ("c.db", "a directory", "it is a directory"),
    ("new/", None, "it is a directory"),
    ("c.db/x.db", "a file", "is not a directory"),
    (":memory:", None, "one per worker"),
])
def test_a_file_that_cannot_keep_the_counters_is_a_configuration_error(tmp_path, monkeypatch, name, made, said):
    monkeypatch.chdir(tmp_path)
    if made == "a directory":
        (tmp_path / "c.db").mkdir()
    elif made == "a file":
        (tmp_path / "c.db").write_text("")
    storage = SQLiteStorage(f"sqlite:///{name}")
    if said is None:
        storage.prepare()
        assert (tmp_path / name).is_file()
        return
    with pytest.raises(ConfigError, match="^ratelimit.storage_url: cannot keep the counters in ") as refused:
        storage.prepare()
    assert said in str(refused.value)
