"""Copy a SQLite store while the service writes to it, and put a copy back, exactly.

A backup goes through SQLite's online backup API in one step: it reads one
snapshot under a read transaction (WAL mode: the service's writers go on), so
the copy holds every row committed before it began and none after. Copying the
``.db`` file instead misses what still sits in its ``-wal``.

A restore also goes through the backup API, from the copy into the store, after
switching the store out of WAL mode: SQLite checkpoints any ``-wal`` first and
removes it, and the copy's pages then replace every page. Nothing of a ``-wal``
left beside the store can come back over the restored rows.

The file written is a single self-contained SQLite file (rollback journal, no
``-wal``), written beside its final name and renamed into place: a backup that
fails leaves any earlier one whole.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import datetime

from ollama_proxy.store.errors import StoreError


class BackupError(StoreError):
    """A backup or restore cannot be made; the message says why in one line."""


def online_backup(database: str, target: str, busy_timeout: float = 5.0) -> None:
    """Write a consistent copy of the SQLite file ``database`` to ``target`` (replacing it), the service running."""
    if os.path.exists(target) and os.path.samefile(database, target):
        raise BackupError(f"{target} is the store itself: name another file")
    if not os.path.exists(database):
        raise BackupError(f"there is no store at {database} to back up")
    partial = f"{target}.partial-{os.getpid()}"
    try:
        _write_copy(database, partial, busy_timeout)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backing up {database} failed: {exc}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _write_copy(database: str, partial: str, busy_timeout: float) -> None:
    # 0600: a backup holds key hashes, sealed refresh tokens and every usage row.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    with closing(sqlite3.connect(database, timeout=busy_timeout)) as source, \
            closing(sqlite3.connect(partial)) as copy:
        source.backup(copy)  # pages=-1: one step, one snapshot; in steps, each write by the service restarts it
        copy.execute("PRAGMA journal_mode=DELETE")  # the copy keeps the store's WAL flag otherwise
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"the copy fails SQLite's check: {check}")
    with open(partial, "rb") as written:
        os.fsync(written.fileno())


def read_revision(path: str) -> str:
    """Return the migration revision of the SQLite backup at ``path``; refuse a file that is not one."""
    if not os.path.isfile(path):
        raise BackupError(f"there is no backup file at {path}")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as backup:
            tables = {row[0] for row in backup.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" not in tables:
                raise BackupError(f"{path} is a SQLite file but not a backup of the store (no alembic_version table)")
            revision = backup.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a backup of the store: {exc}") from None
    if revision is None:
        raise BackupError(f"{path} names no migration revision: not a backup of the store")
    return revision[0]


def restore(backup: str, database: str, busy_timeout: float = 5.0) -> None:
    """Make the SQLite store ``database`` hold exactly what ``backup`` holds, leaving no ``-wal`` or ``-shm``.

    The caller makes sure that no process has the store open (``in_use.exclusive``): SQLite refuses the
    switch out of WAL mode while one does, which stops the restore before it changes anything.
    """
    os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
    try:
        with closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as source, \
                closing(sqlite3.connect(database, timeout=busy_timeout)) as store:
            mode = store.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            if mode != "delete":
                raise BackupError(f"the store {database} stays in {mode} mode: another process has it open")
            source.backup(store)
            store.execute("PRAGMA journal_mode=DELETE")  # a WAL-mode backup's flag comes across with its pages
    except sqlite3.OperationalError as exc:
        raise BackupError(f"restoring into {database} failed: {exc} (is a process still using it?)") from None
    except sqlite3.Error as exc:
        raise BackupError(f"restoring {backup} failed: {exc}") from None
    left = [path for path in (database + "-wal", database + "-shm") if os.path.exists(path)]
    if left:
        raise BackupError(f"{', '.join(left)} remain beside the restored store: a process still has it open")


def row_counts(path: str) -> dict[str, int]:
    """Count the rows of every table in the SQLite file at ``path`` (read only)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as database:
        names = [row[0] for row in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {name: database.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def upgrade_backup_path(database: str, revision: str, now: datetime) -> str:
    """Name the backup an upgrade takes beside ``database``: the revision it migrates from, the UTC time."""
    return f"{os.path.abspath(database)}.upgrade-from-{revision}-{now.strftime('%Y%m%dT%H%M%SZ')}"
