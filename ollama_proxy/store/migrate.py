"""Bring a database's schema to the newest migration, once, whoever else is starting."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from ollama_proxy import __version__
from ollama_proxy.store.backup import online_backup, upgrade_backup_path
from ollama_proxy.store.errors import DatabaseError, StoreError

log = logging.getLogger(__name__)

# Any fixed number: every process that migrates this store takes the same PostgreSQL lock.
_PG_LOCK_KEY = 0x6F6C6C70  # "ollp"
# The newest migration in migrations/versions (a test holds it to what alembic finds there). Known here so
# that a worker checks its store without importing alembic, which weighs megabytes in every worker.
HEAD_REVISION = "0020"
# alembic runs a migration through module-level proxies (``alembic.op``, ``alembic.context``): two threads
# migrating two databases at once would each run the other's steps on the wrong connection.
ALEMBIC_IN_USE = threading.Lock()
_VERSIONS = Path(__file__).parent / "migrations" / "versions"


class UnknownRevision(StoreError):
    """Newer code migrated the store: this code does not know its revision, and must not touch it."""


def known_revisions() -> frozenset[str]:
    """Return the revisions of the migration scripts this code ships, read from their names without alembic."""
    return frozenset(path.name[:4] for path in _VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


class StoreBehind(DatabaseError):
    """The store is at an older migration than this code: a worker waits for gunicorn's master to migrate it."""


def refuse_unknown(revision: str | None) -> None:
    """Raise ``UnknownRevision`` for a store at a revision this code does not know, saying what to do."""
    if revision is not None and revision not in known_revisions():
        raise UnknownRevision(
            f"the store is at migration {revision}, which ollama-proxy {__version__} (migrations up to "
            f"{HEAD_REVISION}) does not know: a newer version migrated it. Run that version, or restore the "
            f"backup taken before its upgrade (ollama-proxy restore FILE; docs/backup.md)")


def alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "ollama_proxy.store:migrations")
    return config


def head_revision() -> str:
    """Return the newest revision as alembic finds it in the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (None for a new one), as alembic's version table says."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Migrate ``engine``'s database to head; safe when several processes start at once."""
    # SQLite: the file lock covers the check too. A new database's first connections switch it to
    # WAL, and that switch answers "database is locked" to a connection racing it.
    with _migration_lock(engine):
        before = current_revision(engine)
        if before == HEAD_REVISION:
            return  # the common case
        refuse_unknown(before)  # else alembic fails with "Can't locate revision", a traceback
        if before is not None:
            back_up_before_upgrade(engine, before)
        from alembic import command

        config = alembic_config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends; PostgreSQL's DDL is transactional.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config.attributes["connection"] = connection
            with ALEMBIC_IN_USE:
                command.upgrade(config, "head")  # a no-op when another process got there first


def check_serving(engine: Engine) -> None:
    """Make a worker's store ready without migrating one that is in use; raise ``StoreBehind`` for an older one.

    Only gunicorn's master (at start and reload) and the ``ollama-proxy`` commands migrate a store in use,
    backing it up first. A worker of the older release still serving during a reload finds the store at a
    newer migration and serves on: each release's migrations keep the previous release working (it once
    tried to migrate, and failed at an unknown revision). A new database, which nothing runs on yet, is
    made here: the app run outside gunicorn (tests, ``flask run``) has no master to make it.
    """
    with _migration_lock(engine):
        revision = current_revision(engine)
    if revision is None:
        upgrade(engine)
    # Ordered by number, not by the scripts on disk: `git pull` puts the newer release's there under this code.
    elif revision < HEAD_REVISION and revision in known_revisions():
        message = (f"the store is at migration {revision}, older than this code's {HEAD_REVISION}: gunicorn's "
                   f"master migrates it at start and at reload (systemctl reload ollama-proxy)")
        raise StoreBehind(message, f"store at migration {revision}, this code needs {HEAD_REVISION}")


def back_up_before_upgrade(engine: Engine, revision: str) -> str | None:
    """Write an online backup of a SQLite store beside it before it is migrated from ``revision``; log where.

    Return its path (None for PostgreSQL, which is not backed up here: pg_dump is the admin's to run).
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite":
        log.warning("store: migrating PostgreSQL from %s to %s with no backup taken here: take one first with "
                    "`ollama-proxy backup FILE` (pg_dump; docs/backup.md)", revision, HEAD_REVISION)
        return None
    if not database or database == ":memory:":
        return None
    path = upgrade_backup_path(database, revision, datetime.now(timezone.utc))
    online_backup(os.path.abspath(database), path)
    log.warning("store: migrating from %s to %s; the store as it was is backed up to %s (the way back: "
                "docs/backup.md)", revision, HEAD_REVISION, path)
    return path


@contextmanager
def _migration_lock(engine: Engine):
    """Hold a file lock beside a SQLite database (PostgreSQL locks in the transaction)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(os.path.abspath(database) + ".migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
