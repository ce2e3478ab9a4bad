from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from ollama_proxy.store.engine import open_engine
from ollama_proxy.store.migrate import (
    ALEMBIC_IN_USE,
    HEAD_REVISION,
    StoreBehind,
    check_serving,
    current_revision,
    head_revision,
    upgrade,
)
from tests.actors import TESTER


def test_the_known_head_is_the_newest_migration_script():
    assert HEAD_REVISION == head_revision()


def test_a_new_database_has_no_revision(store_url):
    engine = open_engine(store_url, 5.0)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


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


@contextmanager
def _migrated(engine, revision: str, direction: str = "upgrade"):
    """A transaction on ``engine`` once its schema is moved (alembic ``upgrade`` or ``downgrade``) to ``revision``."""
    from alembic import command

    from ollama_proxy.store.migrate import alembic_config
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        with ALEMBIC_IN_USE:
            getattr(command, direction)(config, revision)
        yield connection


def _insert_old_key(connection, **columns) -> None:
    """Insert the key 'old' with the columns every revision has, and ``columns`` of the revision at hand."""
    row = {"name": "old", "prefix": "op-AbCdEfGh", "secret_hash": "0" * 64, "scope": "generate", "models": "[]",
           "enabled": True, "created_at": datetime.now(timezone.utc).replace(tzinfo=None), **columns}
    connection.execute(text(f"INSERT INTO api_keys ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"),
                       row)


def test_a_store_made_before_chat_log_keeps_its_keys(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0001") as connection:
        _insert_old_key(connection, created_at=datetime.now(timezone.utc))
    store = open_store(StoreSettings(store_url, 5.0))  # the start migrates it the rest of the way
    try:
        assert current_revision(store.engine) == head_revision()
        old = store.get_key("old")
        assert old is not None and old.chat_log is None and old.enabled
        assert store.update_key("old", chat_log=True, by=TESTER).chat_log is True
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_end_users_keeps_its_usage_and_records_them_after(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0003") as connection:
        connection.execute(text("INSERT INTO usage (ts, request_id, key_name) VALUES (:now, 'old', 'webui')"),
                           {"now": datetime.now(timezone.utc).replace(tzinfo=None)})
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        store.add_usage([{"ts": datetime.now(timezone.utc), "request_id": "new", "key_name": "webui",
                          "end_user": "ann"}])
        assert [(r["request_id"], r["end_user"]) for r in store.query_usage()] == [("old", None), ("new", "ann")]
        with _migrated(store.engine, "0003", "downgrade"):  # and back: the column goes, the rows stay
            pass
        assert "end_user" not in {c["name"] for c in inspect(store.engine).get_columns("usage")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM usage")).scalar() == 2
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_the_web_permission_keeps_its_keys_none_allowed(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0004") as connection:
        _insert_old_key(connection)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        assert store.get_key("old").web is False
        assert store.update_key("old", web=True, by=TESTER).web is True
        with _migrated(store.engine, "0004", "downgrade"):  # and back: the column goes, the key stays
            pass
        assert "web" not in {c["name"] for c in inspect(store.engine).get_columns("api_keys")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM api_keys")).scalars().all() == ["old"]
    finally:
        store.close()
        engine.dispose()


@pytest.mark.parametrize(("before", "column", "row", "read"), [
    ("0005", "cached_tokens", {"prompt_tokens": 310, "cached_tokens": 3990}, 3990),
    ("0017", "cached_tokens_estimated", {"prompt_tokens": 4300, "cached_tokens": None, "cached_tokens_estimated": 3900},
     3900),
])
def test_a_store_made_before_a_usage_column_keeps_its_usage_and_records_it_after(store_url, before, column, row, read):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, before) as connection:
        connection.execute(text("INSERT INTO usage (ts, request_id, prompt_tokens) VALUES (:now, 'old', 12)"),
                           {"now": datetime.now(timezone.utc).replace(tzinfo=None)})
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        store.add_usage([{"ts": datetime.now(timezone.utc), "request_id": "new", **row}])
        assert [(r["request_id"], r[column]) for r in store.query_usage()] == [("old", None), ("new", read)]
        with _migrated(store.engine, before, "downgrade"):  # and back: the column goes, the rows stay
            pass
        assert column not in {c["name"] for c in inspect(store.engine).get_columns("usage")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM usage")).scalar() == 2
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_the_cloud_permission_keeps_its_keys_none_allowed(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0006") as connection:
        _insert_old_key(connection, web=True)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        old = store.get_key("old")
        assert (old.web, old.cloud) == (True, False)  # web does not bring cloud with it
        assert store.update_key("old", cloud=True, by=TESTER).cloud is True
        with _migrated(store.engine, "0006", "downgrade"):  # and back: the column goes, the key stays
            pass
        assert "cloud" not in {c["name"] for c in inspect(store.engine).get_columns("api_keys")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM api_keys")).scalars().all() == ["old"]
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_owners_keeps_its_keys_owned_by_no_one(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0011") as connection:
        _insert_old_key(connection, team=None)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        assert store.get_key("old").owner is None
        store.create_key("new", owner="sub-mia", by=TESTER)
        assert [k.name for k in store.list_keys(owner="sub-mia")] == ["new"]
        with _migrated(store.engine, "0011", "downgrade"):  # and back: the column goes, the keys stay
            pass
        assert "owner" not in {c["name"] for c in inspect(store.engine).get_columns("api_keys")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM api_keys ORDER BY name")).scalars().all() == [
                "new", "old"]
    finally:
        store.close()
        engine.dispose()


def _old_key_column(engine, column: str):
    """Read one column of the key 'old' with SQL alone: the store's code reads the columns of the newest schema."""
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT {column} FROM api_keys WHERE name = 'old'")).scalar_one()


def test_a_store_made_before_shown_secrets_gets_the_table_and_loses_it_going_back(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0013") as connection:
        _insert_old_key(connection)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        store.hold_shown_secret("h1", "old", b"sealed", until=datetime.now(timezone.utc) + timedelta(minutes=1))
        assert store.take_shown_secret("h1", "old") == b"sealed"
        with _migrated(store.engine, "0013", "downgrade"):
            pass
        assert "shown_secrets" not in inspect(store.engine).get_table_names()
        assert _old_key_column(store.engine, "name") == "old"  # read as 0013 has it: newer code reads newer columns
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_members_confirms_the_owners_of_its_keys_from_then(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0014") as connection:
        _insert_old_key(connection, owner="sub-mia", team=None)
    before = datetime.now(timezone.utc)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        member = store.get_member("sub-mia")
        assert (member.name, member.role, member.team, member.renewable) == ("sub-mia", "member", None, False)
        assert before <= member.confirmed_at <= datetime.now(timezone.utc)
        with _migrated(store.engine, "0014", "downgrade"):
            pass
        assert "members" not in inspect(store.engine).get_table_names()
        assert _old_key_column(store.engine, "owner") == "sub-mia"
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_key_ids_gives_its_usage_the_ids_of_the_keys_it_was_and_ids_are_not_given_again(
        store_url):
    engine = open_engine(store_url, 10.0)
    made = datetime(2026, 11, 2, tzinfo=timezone.utc).replace(tzinfo=None)
    with _migrated(engine, "0015") as connection:
        _insert_old_key(connection, team="lab", created_at=made)
        connection.execute(text("INSERT INTO teams (name, models, created_at) VALUES ('lab', '[]', :made)"),
                           {"made": made})
        connection.execute(text("INSERT INTO usage (ts, request_id, key_name, team) VALUES "
                                "(:before, 'deleted-keys', 'old', 'lab'), (:after, 'its', 'old', 'lab'), "
                                "(:after, 'a-token', 'webui', NULL)"),
                           {"before": made - timedelta(days=1), "after": made + timedelta(days=1)})
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert current_revision(store.engine) == head_revision()
        old, lab = store.get_key("old"), store.get_team("lab")
        ids = {row["request_id"]: (row["key_id"], row["team_id"]) for row in store.query_usage()}
        # A row older than the key of its name was a deleted key's: no id. A token of the file has none.
        assert ids == {"deleted-keys": (None, None), "its": (old.id, lab.id), "a-token": (None, None)}
        store.delete_key("old", by=TESTER)
        store.delete_team("lab", by=TESTER)
        assert store.create_team("lab", by=TESTER).id != lab.id  # SQLite too: AUTOINCREMENT from 0016
        assert store.create_key("old", by=TESTER)[0].id != old.id
        with _migrated(store.engine, "0015", "downgrade"):  # and back: the columns go, the rows stay
            pass
        assert not {"key_id", "team_id"} & {c["name"] for c in inspect(store.engine).get_columns("usage")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM usage")).scalar() == 3
    finally:
        store.close()
        engine.dispose()


def test_a_store_made_before_key_rotation_keeps_its_keys_rotates_them_and_goes_back(store_url):
    engine = open_engine(store_url, 10.0)
    with _migrated(engine, "0018") as connection:
        _insert_old_key(connection)
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        assert store.get_key("old").previous_until is None
        _, secret = store.rotate_key("old", grace=timedelta(hours=1), by=TESTER)
        assert store.find_key(secret).name == "old"
        with _migrated(store.engine, "0018", "downgrade"):  # and back: the columns go, the key stays
            pass
        columns = {c["name"] for c in inspect(store.engine).get_columns("api_keys")}
        assert not {"previous_prefix", "previous_secret_hash", "previous_until"} & columns
        assert _old_key_column(store.engine, "prefix") == secret[:11]
    finally:
        store.close()
        engine.dispose()


def test_a_worker_makes_a_new_store(store_url):
    engine = open_engine(store_url, 5.0)
    try:
        check_serving(engine)
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_a_worker_serves_a_store_a_newer_release_migrated_and_leaves_it_so(store_url):
    """An old worker during an upgrade's reload: the store is past its code, and it must serve on."""
    store = open_store(StoreSettings(store_url, 5.0))
    try:
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        check_serving(store.engine)
        assert current_revision(store.engine) == "9999"
    finally:
        store.close()


def test_a_worker_refuses_an_older_store_and_leaves_migrating_it_to_the_master(store_url):
    engine = open_engine(store_url, 5.0)
    try:
        with _migrated(engine, "0018"):
            pass
        with pytest.raises(StoreBehind) as refused:
            check_serving(engine)
        assert current_revision(engine) == "0018"
        assert "older than this code's" in str(refused.value) and "reload" in str(refused.value)
    finally:
        engine.dispose()
