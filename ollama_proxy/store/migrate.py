"""Bring a database's schema to the newest migration, once, whoever else is starting."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

# Any fixed number: every process that migrates this store takes the same PostgreSQL lock.
_PG_LOCK_KEY = 0x6F6C6C70  # "ollp"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "ollama_proxy.store:migrations")
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate ``engine``'s database to head; safe when several processes start at once."""
    if current_revision(engine) == head_revision():
        return  # the common case, and it takes no lock
    config = alembic_config()
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends; PostgreSQL's DDL is transactional.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = connection
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
