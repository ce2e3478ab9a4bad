"""Keep rate-limit counters in a SQLite file that every worker of one instance opens.

gunicorn's workers are separate processes, so an in-memory counter would let
each of them admit the whole limit. A SQLite file is shared storage that needs
no service: each increment is one UPSERT statement, which SQLite runs under its
write lock, so concurrent workers never lose an increment and a window admits
exactly its limit. The counters are throwaway (a lost window only forgives a
minute), so the file skips fsync.

Registered with the ``limits`` library under the ``sqlite://`` scheme:
``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``. Only the
fixed-window strategy is supported.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing

from limits.storage import Storage

from ollama_proxy.config import ConfigError

_SCHEMA = "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)"
# A counter whose window has passed starts again from this increment.
_INCR = """
INSERT INTO counters (key, count, expires) VALUES (:key, :amount, :expires)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN expires <= :now THEN :amount ELSE count + :amount END,
    expires = CASE WHEN expires <= :now THEN :expires ELSE expires END
RETURNING count
"""
# Expired counters are deleted now and then, so the file does not grow with every key ever seen.
PURGE_EVERY = 1000


class SQLiteStorage(Storage):
    """Fixed-window counters in one SQLite file, exact across processes."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, busy_timeout: float = 5.0, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = file_of(uri)
        if not self.path:
            raise ValueError(f"a SQLite rate-limit storage needs a file: {uri}")
        self.busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._increments = 0

    def prepare(self) -> None:
        """Make the file and its table now, or raise ConfigError saying why it cannot be used.

        At start, not at the first request: a file that cannot be made would fail every request, and one
        that cannot be opened would admit every request unlimited (a storage outage admits).
        """
        check_file(self.path)
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)) as db:
                self._set_up(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(_cannot_keep(self.path, str(exc))) from None

    @property
    def base_exceptions(self):
        # A directory deleted under a running service is an outage of the storage, as a locked file is.
        return (sqlite3.Error, OSError)

    def _db(self) -> sqlite3.Connection:
        # A connection must not cross a fork: each worker opens its own.
        if self._connection is None or self._pid != os.getpid():
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            self._set_up(connection)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL and make its table, trying again while another worker does the same.

        The switch to WAL answers "database is locked" at once to a connection racing another's, without
        waiting out the busy timeout: the workers' first requests, all at once, must not find the counters
        unavailable (they would be admitted unlimited).
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=OFF")
                connection.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _query(self, sql: str, params: dict | tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        self._increments += 1
        if self._increments % PURGE_EVERY == 0:
            self._query("DELETE FROM counters WHERE expires <= ?", (now,))
        rows = self._query(_INCR, {"key": key, "amount": amount, "expires": now + expiry, "now": now})
        return rows[0][0]

    def get(self, key: str) -> int:
        rows = self._query("SELECT count FROM counters WHERE key = ? AND expires > ?", (key, time.time()))
        return rows[0][0] if rows else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        rows = self._query("SELECT expires FROM counters WHERE key = ? AND expires > ?", (key, now))
        return rows[0][0] if rows else now

    def check(self) -> bool:
        try:
            self._query("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        with self._lock:
            return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._query("DELETE FROM counters WHERE key = ?", (key,))


def file_of(url: str) -> str:
    """The file a ``sqlite://`` URL names: ``sqlite:///x`` is ``x`` (relative), ``sqlite:////x`` is ``/x``."""
    return url.split("://", 1)[1][1:]


def check_file(path: str) -> None:
    """Raise ConfigError if the counters' file at ``path`` could not be made or written; nothing is made."""
    problem = unusable(path)
    if problem is not None:
        raise ConfigError(_cannot_keep(path, problem))


def _cannot_keep(path: str, problem: str) -> str:
    return f"ratelimit.storage_url: cannot keep the counters in {os.path.abspath(path)}: {problem}"


def unusable(path: str) -> str | None:
    """Say why a SQLite file at ``path`` could not be made or written, or None if it could; nothing is made."""
    if path == ":memory:":
        return "an in-memory database is one per worker, each admitting the whole limit: name a file"
    if os.path.isdir(path) or path.endswith("/"):
        return "it is a directory"
    directory = os.path.dirname(os.path.abspath(path))
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is not a directory"
    # SQLite writes its -wal and -shm files beside the database: the directory must take new files.
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return "it cannot be read and written"
    return None
