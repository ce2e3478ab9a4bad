"""``ollama-proxy --version``: this code's version and newest migration, and the configured store's migration."""

from __future__ import annotations

import argparse
import os

from ollama_proxy import __version__


def describe_version() -> str:
    """Return the version line, and a line naming the migration the configured store is at (or why not)."""
    from ollama_proxy.store.migrate import HEAD_REVISION

    return f"ollama-proxy {__version__} (migrations up to {HEAD_REVISION})\nstore: {_store_revision()}"


def _store_revision() -> str:
    from ollama_proxy.cli.store_access import foreign_owner, sqlite_file
    from ollama_proxy.config import ConfigError, load_settings
    from ollama_proxy.store import DatabaseError, StoreError, open_store

    try:
        settings = load_settings().store
    except ConfigError as exc:
        return f"unknown (configuration error: {exc})"
    database = sqlite_file(settings.url)
    if database is not None:
        if not os.path.exists(database):
            return f"none yet at {database}"
        owner = foreign_owner(database, os.geteuid())
        if owner:  # opening it as root would leave files beside it that the service cannot open
            return f"{database} belongs to {owner}: run this as {owner} to read its migration"
    try:
        store = open_store(settings, migrate=False)
        try:
            return f"at migration {store.revision() or 'none'} ({database or 'PostgreSQL'})"
        finally:
            store.close()
    except (StoreError, DatabaseError) as exc:
        return f"unknown ({getattr(exc, 'reason', exc)})"


class ShowVersion(argparse.Action):
    """Print ``describe_version()`` and exit, as argparse's own ``version`` action does with a fixed text."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version, its newest migration and the configured store's, and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(describe_version())
        parser.exit()
