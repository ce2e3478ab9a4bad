"""A configuration file naming a fresh SQLite store, for the commands that use the store."""

from __future__ import annotations

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store


@pytest.fixture
def store_config(tmp_path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    return str(path)


@pytest.fixture
def config(store_config, monkeypatch) -> str:
    """The same file, named by ``OLLAMA_PROXY_CONFIG``: commands find it without ``--config``."""
    monkeypatch.setenv("OLLAMA_PROXY_CONFIG", store_config)
    return store_config


def open_test_store(tmp_path):
    """The store the configuration names, opened (and migrated) directly."""
    return open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))

