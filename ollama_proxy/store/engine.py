"""Open the database a ``store.url`` names: SQLite tuned for several processes, or PostgreSQL."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def open_engine(url: str, busy_timeout: float) -> Engine:
    """Return an engine for ``url``; a SQLite file's directory is created."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's psycopg2 default
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, connect_args=_pg_args(parsed, busy_timeout))
    if parsed.database and parsed.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout})
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def _pg_args(url, busy_timeout: float) -> dict:
    if url.get_backend_name() != "postgresql":
        return {}
    # A statement stuck behind a lock fails instead of hanging a request forever.
    return {"options": f"-c lock_timeout={int(busy_timeout * 1000)}"}


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (every worker's key lookups) never wait for a writer (usage batches).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
