"""Open the database a ``store.url`` names: SQLite tuned for several processes, or PostgreSQL."""

from __future__ import annotations

import logging
import math
import os

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ollama_proxy.store.errors import short_reason


def open_engine(url: str, busy_timeout: float, network_timeout: float = 10.0) -> Engine:
    """Return an engine for ``url``; a SQLite file's directory is created."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's psycopg2 default
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=_pg_args(parsed, busy_timeout, network_timeout))
        event.listen(engine, "handle_error", _drop_lost_connection)
        logging.getLogger(f"sqlalchemy.pool.impl.{type(engine.pool).__name__}").addFilter(_reset_failure_in_one_line)
        return engine
    if parsed.database and parsed.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout})
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def connection_lost(error: BaseException, driver) -> bool:
    """Tell whether an error of PostgreSQL's ``driver`` (psycopg) says its connection is gone: the server shut it
    down (SQLSTATE 57P01-3), the network cut it (08...), or the driver lost it (no SQLSTATE: "consuming input
    failed", a pipeline left busy). psycopg marks such a connection broken only once it is used again, so SQLAlchemy
    would roll it back and lend it again, failing the next request and writing a traceback."""
    state = getattr(error, "sqlstate", "")
    return (isinstance(error, (driver.OperationalError, driver.InterfaceError))
            and (state is None or state.startswith(("08", "57P"))))


def _drop_lost_connection(context) -> None:
    if connection_lost(context.original_exception, context.dialect.loaded_dbapi):
        context.is_disconnect = True


def _reset_failure_in_one_line(record: logging.LogRecord) -> bool:
    """Say in one line, not with a traceback, that a connection cut as it went back to the pool (its rollback
    failed) was dropped: the pool has handled it, and the next request gets a new one."""
    if record.msg == "Exception during reset or similar" and record.exc_info:
        record.msg, record.args = "store: a connection lost as it went back to the pool was dropped: %s", (
            short_reason(record.exc_info[1]),)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _pg_args(url, busy_timeout: float, network_timeout: float) -> dict:
    if url.get_backend_name() != "postgresql":
        return {}
    seconds = max(2, math.ceil(network_timeout))  # libpq's least connect_timeout
    bounds = {
        "connect_timeout": seconds,
        # A silent network (no reset, packets dropped): what was sent goes unacknowledged, or no answer comes.
        "tcp_user_timeout": round(network_timeout * 1000),
        "keepalives": 1, "keepalives_idle": max(1, seconds // 2), "keepalives_interval": max(1, seconds // 6),
        "keepalives_count": 3,
    }
    # A statement stuck behind a lock fails instead of hanging a request forever.
    return {"options": f"-c lock_timeout={int(busy_timeout * 1000)}",
            **{name: value for name, value in bounds.items() if name not in url.query}}  # the URL's own win


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (every worker's key lookups) never wait for a writer (usage batches).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
