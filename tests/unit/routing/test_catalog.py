from __future__ import annotations

import pytest

from ollama_proxy.config import StoreSettings, parse_settings
from ollama_proxy.routing.catalog import ModelCatalog
from ollama_proxy.store import open_store
from tests.actors import TESTER
from tests.fakes.clock import ManualClock


@pytest.fixture
def store(tmp_path):
    opened = open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))
    yield opened
    opened.close()


def test_store_entries_merge_over_the_file_and_are_reread_after_the_bound(store):
    settings = parse_settings({"models": {"aliases": {"gpt-4o": "llama3.2"}}}, environ={}).models
    clock = ManualClock()
    catalog = ModelCatalog(settings, lambda: store, ttl=5, clock=clock)
    store.set_alias("gpt-4o", "qwen3:8b", by=TESTER)
    assert catalog.table().resolve("gpt-4o") == "qwen3:8b"
    store.delete_alias("gpt-4o", by=TESTER)
    clock.now += 4.9
    assert catalog.table().resolve("gpt-4o") == "qwen3:8b"  # within the bound: not read again
    clock.now += 0.1
    assert catalog.table().resolve("gpt-4o") == "llama3.2"  # the file's entry shows again


def test_a_broken_store_keeps_the_last_view(store, tmp_path):
    settings = parse_settings({"models": {"aliases": {"a": "b"}}}, environ={}).models
    clock = ManualClock()
    catalog = ModelCatalog(settings, lambda: store, ttl=1, clock=clock)
    store.set_alias("c", "d", by=TESTER)
    assert catalog.table().resolve("c") == "d"
    store.engine.dispose()
    (tmp_path / "store.db").unlink()
    (tmp_path / "store.db").mkdir()
    clock.now += 2
    assert catalog.table().resolve("c") == "d" and catalog.table().resolve("a") == "b"
