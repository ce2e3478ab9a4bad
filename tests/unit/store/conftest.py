"""A fresh store per test, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_cluster").new_database()


@pytest.fixture
def store(store_url):
    opened = open_store(StoreSettings(store_url, busy_timeout=5.0))
    yield opened
    opened.close()
