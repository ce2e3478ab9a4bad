"""pg_dump and pg_restore of a PostgreSQL store, row for row; a restore refused while others are connected."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ollama_proxy.cli.backup import back_up, put_back
from ollama_proxy.config import StoreSettings
from ollama_proxy.store import Actor, open_store
from ollama_proxy.store.backup import BackupError

pytestmark = pytest.mark.postgres
BY = Actor("tester", "cli", "here")


def _rows(store) -> dict:
    with store.engine.connect() as connection:
        return {table: sorted(map(repr, connection.execute(text(f'SELECT * FROM "{table}"')).all()))
                for table in ("api_keys", "teams", "audit", "alembic_version")}


def test_a_dump_restores_row_for_row_and_nothing_made_after_it_comes_back(postgres_cluster, tmp_path):
    settings = StoreSettings(postgres_cluster.new_database(), 5.0)
    store = open_store(settings)
    store.create_team("research", by=BY)
    store.create_key("before", by=BY, team="research")
    backed_up = _rows(store)
    back_up(settings, str(tmp_path / "b.dump"))
    store.create_key("after", by=BY)
    with pytest.raises(BackupError, match="other connection"):
        put_back(settings, str(tmp_path / "b.dump"))
    store.close()
    assert "restored" in put_back(settings, str(tmp_path / "b.dump"))
    store = open_store(settings)
    try:
        assert _rows(store) == backed_up
    finally:
        store.close()


def test_a_dump_restores_into_a_new_database(postgres_cluster, tmp_path):
    settings = StoreSettings(postgres_cluster.new_database(), 5.0)
    store = open_store(settings)
    store.create_key("kept", by=BY)
    backed_up = _rows(store)
    store.close()
    back_up(settings, str(tmp_path / "b.dump"))
    fresh = StoreSettings(postgres_cluster.new_database(), 5.0)
    put_back(fresh, str(tmp_path / "b.dump"))
    store = open_store(fresh)
    try:
        assert _rows(store) == backed_up
    finally:
        store.close()


def test_a_restore_waits_for_a_connection_that_closes_just_after_it_began(postgres_cluster, tmp_path):
    settings = StoreSettings(postgres_cluster.new_database(), 5.0)
    store = open_store(settings)
    store.create_key("kept", by=BY)
    backed_up = _rows(store)
    back_up(settings, str(tmp_path / "b.dump"))
    closing = threading.Timer(0.5, store.close)  # the service's last pool, closing as the admin restores
    closing.start()
    try:
        assert "restored" in put_back(settings, str(tmp_path / "b.dump"))
    finally:
        closing.join()
    store = open_store(settings)
    try:
        assert _rows(store) == backed_up
    finally:
        store.close()
