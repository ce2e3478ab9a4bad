"""A fresh store per test, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from tests.migrated import migrated_sqlite


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_cluster").new_database()


@pytest.fixture
def store(store_url):
    if store_url.startswith("sqlite:///"):
        migrated_sqlite(Path(store_url.removeprefix("sqlite:///")))  # as open_store would make it, sooner
    opened = open_store(StoreSettings(store_url, busy_timeout=5.0))
    yield opened
    opened.close()
