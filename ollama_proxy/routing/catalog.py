"""Keep each worker's view of the aliases and overrides in force: the file's and the store's.

The store's entries (set from the admin page) are read at most every
``store.cache_seconds``; if the store cannot be read, the last view (or the
file's alone) stays in force and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, current_app

from ollama_proxy.config.models import ModelsSettings
from ollama_proxy.routing.overrides import ModelTable
from ollama_proxy.store import DatabaseError, Store, current_store

log = logging.getLogger(__name__)
_EXTENSION = "ollama_proxy.routing.overrides"


class ModelCatalog:
    """Return the ModelTable in force, re-read from the store when it is older than ``ttl``."""

    def __init__(self, settings: ModelsSettings, store: Callable[[], Store], ttl: float,
                 clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._table = ModelTable.merged(settings, {}, {})
        self._read_at: float | None = None

    def table(self) -> ModelTable:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl:
            self._read_at = now  # also after a failure: a broken store is not hammered every request
            self._table = self._read()
        return self._table

    def _read(self) -> ModelTable:
        try:
            store = self._store()
            return ModelTable.merged(self._settings, store.list_aliases(), store.list_overrides())
        except DatabaseError as exc:
            log.warning("cannot read aliases and overrides from the store, keeping the last ones: %s", exc.reason)
            return self._table


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions[_EXTENSION] = ModelCatalog(settings.models, lambda: current_store(app),
                                              settings.store.cache_seconds)


def current_models() -> ModelTable:
    """Return the aliases and overrides in force for the current app."""
    return current_app.extensions[_EXTENSION].table()
