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

from limits.storage import Storage

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
        self.path = uri.split("://", 1)[1][1:]  # sqlite:///x -> x (relative), sqlite:////x -> /x
        if not self.path:
            raise ValueError(f"a SQLite rate-limit storage needs a file: {uri}")
        self.busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._increments = 0

    @property
    def base_exceptions(self):
        return sqlite3.Error

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
