"""A configuration file naming a fresh SQLite store, for the commands that use the store."""

from __future__ import annotations

import pytest


@pytest.fixture
def store_config(tmp_path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    return str(path)
