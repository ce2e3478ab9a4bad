"""SQLite's online backup and the exact restore; the backup an upgrade takes; a revision this code does not know."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
from contextlib import closing
from datetime import datetime, timezone

import pytest

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from ollama_proxy.store.backup import (
    BackupError,
    online_backup,
    read_revision,
    restore,
    row_counts,
    upgrade_backup_path,
)
from ollama_proxy.store.engine import open_engine
from ollama_proxy.store.migrate import HEAD_REVISION, UnknownRevision, head_revision, known_revisions, upgrade


def _wal_store(path, values):
    """A WAL database holding ``values``, its last rows still in the -wal: the connection is returned open."""
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # nothing folded into the .db: it all stays in the -wal
    writer.execute("CREATE TABLE alembic_version (version_num TEXT)")
    writer.execute("INSERT INTO alembic_version VALUES (?)", (HEAD_REVISION,))
    writer.execute("CREATE TABLE t (x)")
    writer.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    writer.commit()
    return writer


def _values(path):
    with closing(sqlite3.connect(path)) as database:
        return sorted(v for (v,) in database.execute("SELECT x FROM t"))


def test_a_backup_holds_what_the_wal_holds_and_is_one_file(tmp_path):
    writer = _wal_store(tmp_path / "s.db", [1, 2])
    assert os.path.getsize(tmp_path / "s.db-wal") > 0
    try:
        online_backup(str(tmp_path / "s.db"), str(tmp_path / "b.db"))
    finally:
        writer.close()
    assert _values(tmp_path / "b.db") == [1, 2]
    assert (tmp_path / "b.db").read_bytes()[18:20] == b"\x01\x01"  # rollback journal, not WAL
    assert stat.S_IMODE(os.stat(tmp_path / "b.db").st_mode) == 0o600
    assert [name for name in os.listdir(tmp_path) if name.startswith("b.db")] == ["b.db"]


def test_a_backup_refuses_the_store_itself_and_a_missing_store(tmp_path):
    _wal_store(tmp_path / "s.db", [1]).close()
    with pytest.raises(BackupError, match="is the store itself"):
        online_backup(str(tmp_path / "s.db"), str(tmp_path / "s.db"))
    with pytest.raises(BackupError, match="there is no store at"):
        online_backup(str(tmp_path / "none.db"), str(tmp_path / "b.db"))


def test_a_restore_leaves_nothing_of_a_wal_made_after_the_backup(tmp_path):
    writer = _wal_store(tmp_path / "s.db", [1])
    online_backup(str(tmp_path / "s.db"), str(tmp_path / "b.db"))
    writer.execute("INSERT INTO t VALUES (2)")  # made after the backup, in the -wal only
    writer.commit()
    shutil.copy(tmp_path / "s.db-wal", tmp_path / "kept-wal")
    writer.close()
    os.replace(tmp_path / "kept-wal", tmp_path / "s.db-wal")  # a -wal left behind, as a crash leaves it
    restore(str(tmp_path / "b.db"), str(tmp_path / "s.db"))
    assert _values(tmp_path / "s.db") == [1]
    assert sorted(os.listdir(tmp_path)) == ["b.db", "s.db"]
    assert row_counts(str(tmp_path / "s.db")) == row_counts(str(tmp_path / "b.db"))


def test_a_restore_refuses_a_store_another_connection_has_open(tmp_path):
    online_backup(str(_make(tmp_path / "s.db")), str(tmp_path / "b.db"))
    reader = sqlite3.connect(tmp_path / "s.db")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    try:
        with pytest.raises(BackupError, match="is a process still using it"):
            restore(str(tmp_path / "b.db"), str(tmp_path / "s.db"), busy_timeout=0.1)
    finally:
        reader.close()


def _make(path):
    _wal_store(path, [1]).close()
    return path


@pytest.mark.parametrize("content, reason", [
    (b"not a database at all, but long enough to be read" * 20, "not a backup of the store: file is not a database"),
    (None, "not a backup of the store \\(no alembic_version table\\)"),
])
def test_a_file_that_is_no_backup_is_refused_in_one_line(tmp_path, content, reason):
    path = tmp_path / "f"
    if content is None:
        with closing(sqlite3.connect(path)) as database:
            database.execute("CREATE TABLE other (x)")
    else:
        path.write_bytes(content)
    with pytest.raises(BackupError, match=reason):
        read_revision(str(path))


def test_the_upgrade_backup_is_named_after_the_revision_it_leaves_and_the_time():
    moment = datetime(2026, 11, 27, 10, 15, 0, tzinfo=timezone.utc)
    assert upgrade_backup_path("/var/lib/p/ollama-proxy.db", "0017", moment) == \
        "/var/lib/p/ollama-proxy.db.upgrade-from-0017-20261127T101500Z"


def test_the_known_revisions_are_the_migration_scripts_alembic_finds():
    from alembic.script import ScriptDirectory

    from ollama_proxy.store.migrate import alembic_config
    scripts = ScriptDirectory.from_config(alembic_config())
    assert known_revisions() == {script.revision for script in scripts.walk_revisions()}
    assert HEAD_REVISION == head_revision()


def _at(url, revision):
    from alembic import command

    from ollama_proxy.store.migrate import ALEMBIC_IN_USE, alembic_config
    engine = open_engine(url, 5.0)
    config = alembic_config()
    with engine.begin() as connection, ALEMBIC_IN_USE:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def test_an_upgrade_backs_the_store_up_first_and_logs_where(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = _at(url, "0017")
    with caplog.at_level(logging.WARNING, "ollama_proxy.store.migrate"):
        upgrade(engine)
    engine.dispose()
    [backup] = tmp_path.glob("store.db.upgrade-from-0017-*")
    assert read_revision(str(backup)) == "0017"
    assert f"backed up to {backup}" in caplog.text


def test_no_backup_is_taken_of_a_new_store_nor_one_at_the_newest_migration(tmp_path):
    settings = StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0)
    open_store(settings).close()
    open_store(settings).close()
    assert not list(tmp_path.glob("*.upgrade-from-*"))


def test_a_store_at_an_unknown_revision_is_refused_before_alembic_touches_it(tmp_path):
    settings = StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0)
    open_store(settings).close()
    with closing(sqlite3.connect(tmp_path / "store.db")) as database, database:
        database.execute("UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(UnknownRevision) as refused:
        open_store(settings)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("the store is at migration 0999, which ollama-proxy ")
    assert f"(migrations up to {HEAD_REVISION}) does not know" in str(refused.value)
    assert not list(tmp_path.glob("*.upgrade-from-*"))
