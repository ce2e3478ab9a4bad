"""Open the store for a command without leaving files in it that the service could not open."""

from __future__ import annotations

import os
import pwd
import sys

from sqlalchemy.engine import make_url

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import Store, StoreError, open_store


def sqlite_file(url: str) -> str | None:
    """Return the absolute path of the SQLite file ``url`` names, or None for another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)


def nearest_existing(path: str) -> str:
    """Return ``path`` or the closest of its parents that exists."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def foreign_owner(path: str, euid: int) -> str | None:
    """Name the user a root command would leave unreadable files to at ``path``, or None when there is none.

    SQLite makes its lock, journal and WAL files beside the database as whoever opens it: made by root,
    the service's own user could no longer open its store, and the service would fail to start.
    """
    if euid != 0:
        return None  # files made by anyone else are theirs; the directory's rights decide
    owner = os.stat(nearest_existing(path)).st_uid
    if owner == 0:
        return None
    try:
        return pwd.getpwuid(owner).pw_name
    except KeyError:
        return f"uid {owner}"


def open_for_command(settings: StoreSettings) -> Store:
    """Open the configured store; refuse what would break the service's access to it."""
    path = sqlite_file(settings.url)
    if path is None:
        return open_store(settings)
    owner = foreign_owner(path, os.geteuid())
    if owner:
        raise StoreError(
            f"the store {path} belongs to {owner}: run this command as {owner} (sudo -u {owner} ..., or the "
            f"ollama-proxy command of INSTALL.md), since files root makes there are ones {owner} cannot open")
    new = not os.path.exists(path)
    try:
        store = open_store(settings)
    except PermissionError as exc:
        raise StoreError(f"cannot open or make the store {path}: {exc.strerror}") from None
    if new:
        # Said so that a store in the wrong place (a configuration without the service's environment) shows.
        print(f"ollama-proxy: made a new, empty store at {path}", file=sys.stderr)
    return store
