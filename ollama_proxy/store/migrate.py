"""Bring a database's schema to the newest migration, once, whoever else is starting."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager

from sqlalchemy import Engine, inspect, text

# Any fixed number: every process that migrates this store takes the same PostgreSQL lock.
_PG_LOCK_KEY = 0x6F6C6C70  # "ollp"
# The newest migration in migrations/versions (a test holds it to what alembic finds there). Known here so
# that a worker checks its store without importing alembic, which weighs megabytes in every worker.
HEAD_REVISION = "0019"
# alembic runs a migration through module-level proxies (``alembic.op``, ``alembic.context``): two threads
# migrating two databases at once would each run the other's steps on the wrong connection.
ALEMBIC_IN_USE = threading.Lock()


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
        if current_revision(engine) == HEAD_REVISION:
            return  # the common case
        from alembic import command

        config = alembic_config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends; PostgreSQL's DDL is transactional.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config.attributes["connection"] = connection
            with ALEMBIC_IN_USE:
                command.upgrade(config, "head")  # a no-op when another process got there first


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
