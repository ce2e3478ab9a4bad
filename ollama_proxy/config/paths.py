"""Anchor the relative paths of the configuration at the project root."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def under_project_root(path: str) -> str:
    """Return ``path``, made absolute under the project root when it is relative."""
    return path if os.path.isabs(path) else str(PROJECT_ROOT / path)


def rooted_sqlite(url: str) -> str:
    """Anchor a relative SQLite path at the project root, as the log directory is."""
    prefix = "sqlite:///"
    path = url[len(prefix):] if url.startswith(prefix) else None
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + str(PROJECT_ROOT / path)


def without_trailing_slash(url: str) -> str:
    return url.rstrip("/")
