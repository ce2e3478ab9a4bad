"""Keep managed API keys, usage, model aliases and overrides in a database.

SQLAlchemy Core over SQLite (the default, a file, nothing to install) or
PostgreSQL (``postgresql://...``, psycopg 3, for several instances). The schema
is created and migrated with Alembic when the store opens (``migrate=True``),
under a lock, so several processes may start at once. The app's workers only
check it (``check_serving``): gunicorn's master migrates it at start and reload.

    store = open_store(settings.store)      # or, in the app: current_store()

Every change names who makes it (``by``, an ``Actor``) and is recorded in the audit
trail in the same transaction (``store.audit``).

Keys (a secret is shown once, at creation; only its sha256 is kept):
    create_key(name, by, scope="generate"|"manage", models=[globs], rpm=None, tpm=None,
               expires_at=None, chat_log=None, weight=1.0, klass="interactive",
               trusted_frontend=False, web=False, cloud=False, team=None, owner=None, service=False,
               max_owned=None) -> (ApiKey, secret)   (owner: the person who answers for it)
    list_keys(team=None, owner=None) -> [ApiKey]   get_key(name) -> ApiKey | None
    find_key(secret) -> ApiKey | None  (disabled and expired keys too: see ApiKey.usable(now))
    find_secret(secret) -> FoundSecret | None  (the key, and when an old secret a rotation replaced stops)
    rotate_key(name, by, grace=timedelta(0)) -> (ApiKey, secret)   (same key; the old secret works ``grace``)
    update_key(name, by, **fields) -> ApiKey   (scope, models, rpm, tpm, expires_at, enabled,
                                                chat_log, weight, klass, trusted_frontend, web, cloud,
                                                team, owner: a service key's alone)
    touch_key(name, when)              (last used: not in the audit trail)
    delete_key(name, by)
Teams (a key of a team gets no more than its team: see ``store.teams``):
    create_team(name, by, weight=1.0, klass="interactive", models=[globs], rpm=None, tpm=None) -> Team
    list_teams() -> [Team]   get_team(name) -> Team | None
    update_team(name, by, **fields) -> Team   (weight, klass, models, rpm, tpm)
    delete_team(name, by)   (refused while keys belong to it, naming them)
Usage (``ts`` an aware datetime; fields in ``USAGE_FIELDS``):
    add_usage(rows: [dict])            one transaction per batch
    query_usage(since, until, key, model, limit=1000, newest_first=False, end_user=None) -> [dict]
                                       (since <= ts < until; oldest first unless newest_first)
    usage_by_day(since, until, key, model, by=None|"key"|"model") -> [{day, requests,
                 prompt_tokens, completion_tokens, errors, cached_tokens, (key_name, key_id | model)}]
Models (entries here merge over ``models:`` in the YAML file):
    list_aliases() -> {alias: target}  set_alias(alias, target, by)  delete_alias(alias, by)
    list_overrides() -> {model: {"defaults": {...}, "enforce": {...}}}
    set_override(model, defaults, enforce, by)  delete_override(model, by)
Budgets (``store.budgets``; periods in the proxy's time zone):
    set_budget(holder_kind, holder, period, unit, amount, mode="hard", by) -> Budget
    list_budgets() -> [Budget] (each with its key's or team's id)
    clear_budgets(holder_kind, holder, period=None, unit=None, by) -> int
Budgets' spending (``store.spend``: each holder's period, charged as requests end, and workers' leases):
    spent([(slot, period_start)]) -> {(slot, period_start): (spent, refusals)}
    charge([(slot, period_start, amount)], ids={(kind, name): id as checked})  (none to a holder made again)
    note_refusal(slot, period_start)
Shown secrets (``store.shown_secrets``: a new key's secret, sealed, from the admin page's form to the
page that shows it once):
    hold_shown_secret(handle, key_name, sealed, until)   take_shown_secret(handle, key_name) -> bytes | None
Members (``store.members``: what the identity provider last said of each person signed in with it):
    confirm_member(subject, name, role, team, refresh_token, now)   lose_member(subject, reason, by, now) -> bool
    note_member_check(subject, note, now, forget_token=False)
    claim_member_check(subject, now, until) -> sealed refresh token | None   members_due(before, now) -> [subject]
    get_member(subject) -> Member | None   list_members() -> [Member]
Audit trail (append-only):
    audit_trail(since, until, limit=None, newest_first=False) -> [AuditEntry]
    record_event(by, action, target, detail=None)   (sign-ins, failed sign-ins)

Every datetime going in must be aware; every one coming out is aware UTC. A name
already taken raises ``Conflict``, an absent one ``Missing``, bad values
``StoreError`` (their common base). The database failing raises ``DatabaseError``
(``ValueRefused`` for a value it would not take), never one of SQLAlchemy's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ollama_proxy.config import StoreSettings
from ollama_proxy.store.audit import Actor, AuditEntry, AuditStore
from ollama_proxy.store.budgets import Budget, BudgetStore
from ollama_proxy.store.engine import open_engine
from ollama_proxy.store.errors import Conflict, DatabaseError, Missing, StoreError, ValueRefused, database_errors
from ollama_proxy.store.keys import ApiKey, KeyStore
from ollama_proxy.store.members import Member, MemberStore
from ollama_proxy.store.migrate import check_serving, current_revision, upgrade
from ollama_proxy.store.models import ModelStore
from ollama_proxy.store.shown_secrets import ShownSecretStore
from ollama_proxy.store.spend import SpendStore
from ollama_proxy.store.teams import Team, TeamStore
from ollama_proxy.store.usage import USAGE_FIELDS, UsageStore

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Actor", "ApiKey", "AuditEntry", "Budget", "Conflict", "DatabaseError", "Member", "Missing", "Store",
           "StoreError", "Team", "USAGE_FIELDS", "ValueRefused", "current_store", "init_app", "open_store"]
_EXTENSION = "ollama_proxy.store"


class Store(KeyStore, TeamStore, BudgetStore, SpendStore, UsageStore, ModelStore, ShownSecretStore, MemberStore,
            AuditStore):
    """The store's whole API over one engine (a pool of connections)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    def revision(self) -> str | None:
        """Return the migration revision the database is at now (None: never migrated)."""
        with database_errors():
            return current_revision(self.engine)


def open_store(settings: StoreSettings, migrate: bool = True) -> Store:
    """Open the store that ``settings`` name, migrating its schema to the newest first."""
    with database_errors():
        store = Store(open_engine(settings.url, settings.busy_timeout, settings.network_timeout))
        if migrate:
            upgrade(store.engine)
    return store


class _LazyStore:
    """Open the app's store on first use, so a worker that never needs it never connects."""

    def __init__(self, settings: StoreSettings):
        self._settings = settings
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = _open_for_a_worker(self._settings)
        return self._store


def _open_for_a_worker(settings: StoreSettings) -> Store:
    """Open the store with a check only: gunicorn's master migrates it (deploy/gunicorn.conf.py), never a worker."""
    store = open_store(settings, migrate=False)
    try:
        with database_errors():
            check_serving(store.engine)
    except DatabaseError:
        store.close()
        raise
    return store


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION] = _LazyStore(app.config["SETTINGS"].store)


def shown_revision(app: Flask | None = None) -> str | None:
    """Return the migration the app's store is at now, or None when it cannot be read (/health, the admin page)."""
    try:
        return current_store(app).revision()
    except DatabaseError:
        return None


def current_store(app: Flask | None = None) -> Store:
    """Return the store of ``app`` (default: the current app), opening it on first use."""
    if app is None:
        from flask import current_app  # here: the command line opens a store without loading Flask

        app = current_app
    return app.extensions[_EXTENSION].get()
