"""A SQLite store migrated to this code's newest migration, copied for each test that needs a new one.

Migrating a new SQLite file runs every migration, which takes longer than most tests themselves; a copy
of a store that has just been migrated is the same store, at a fraction of the cost. Tests of the
migrations themselves make their stores from nothing, as before.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store


@functools.cache
def _migrated() -> Path:
    where = Path(tempfile.mkdtemp(prefix="migrated-store-"))
    atexit.register(shutil.rmtree, where, True)
    open_store(StoreSettings(f"sqlite:///{where / 'store.db'}", 5.0)).close()
    return where / "store.db"


def migrated_sqlite(path: Path) -> str:
    """Make ``path`` a new SQLite store at this code's newest migration; return its URL."""
    with closing(sqlite3.connect(_migrated())) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)  # whatever the source's write-ahead log still holds comes across too
    return f"sqlite:///{path}"
