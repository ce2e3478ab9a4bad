from __future__ import annotations

import threading

from sqlalchemy import inspect

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from ollama_proxy.store.engine import open_engine
from ollama_proxy.store.migrate import current_revision, head_revision, upgrade


def test_open_creates_every_table_at_head(store_url):
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        tables = set(inspect(store.engine).get_table_names())
        assert {"api_keys", "usage", "aliases", "overrides", "alembic_version"} <= tables
        assert current_revision(store.engine) == head_revision()
        indexed = {tuple(i["column_names"]) for i in inspect(store.engine).get_indexes("usage")}
        assert {("ts",), ("key_name",), ("model",)} <= indexed
    finally:
        store.close()


def test_several_processes_starting_at_once_migrate_once(store_url):
    engines = [open_engine(store_url, 10.0) for _ in range(4)]
    errors = []

    def migrate(engine):
        try:
            upgrade(engine)
        except Exception as exc:  # collected, so the test names what failed in which thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert {current_revision(e) for e in engines} == {head_revision()}
    for engine in engines:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = open_store(StoreSettings(f"sqlite:///{tmp_path / 'sub' / 'store.db'}", 5.0))
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
