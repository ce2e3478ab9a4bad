"""Keep the audit trail: who changed what in the store, when, from where, the value before and after.

Every method of the store that changes keys, aliases or overrides takes ``by``
(an ``Actor``: an admin user, an OIDC subject, or the OS user running the CLI)
and writes one entry in the same transaction as the change, so a change is
never made without its entry, nor recorded without being made. Sign-ins and
failed sign-ins are entries of their own (``record_event``). A key's entry
holds its name and prefix, never its secret or the secret's hash.

The trail is append-only: the store has no method that changes or removes an
entry, and the database refuses to (triggers made by migration 0008).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select

from ollama_proxy.store.errors import StoreError, maps_database_errors
from ollama_proxy.store.schema import audit, utcnow

ACTOR_KINDS = ("admin", "oidc", "cli")
_SHORT = 255  # the longest actor, origin or target kept; longer ones are cut


@dataclass(frozen=True)
class Actor:
    """Who makes a change: ``name`` (an admin user, an OIDC subject, an OS user), ``kind``, and ``origin``.

    ``origin`` is where from: the client's address for the admin page, the host (and the SSH client,
    if any) for the CLI.
    """

    name: str
    kind: str
    origin: str

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise StoreError(f"an actor is one of {', '.join(ACTOR_KINDS)}, not {self.kind!r}")


@dataclass(frozen=True)
class AuditEntry:
    """One change (or sign-in) as recorded; ``before`` and ``after`` are None where nothing was or is."""

    id: int
    ts: datetime
    actor: str
    actor_kind: str
    origin: str
    action: str  # "key.create", "key.update", "alias.delete", "sign-in failed" ...
    target: str  # the key's, alias's, model's or user's name
    before: dict | None
    after: dict | None

    @property
    def change(self) -> str:
        """The change in one line: ``field: before -> after`` for each field, or what was made or removed."""
        if self.before is None and self.after is None:
            return "-"
        if self.before is None or self.after is None:
            return json.dumps(self.after if self.before is None else self.before, separators=(",", ":"))
        return "; ".join(f"{name}: {json.dumps(self.before.get(name))} -> {json.dumps(value)}"
                         for name, value in self.after.items())


def json_safe(value):
    """``value`` with datetimes as ISO text and tuples as lists, as the JSON column keeps it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    return value


def changed(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Keep only the fields that differ between two records of one thing (both given), else both as they are."""
    if before is None or after is None:
        return before, after
    fields = [name for name in after if before.get(name) != after[name]]
    return {name: before.get(name) for name in fields}, {name: after[name] for name in fields}


def write_entry(connection: Connection, by: Actor, action: str, target: str,
                before: dict | None = None, after: dict | None = None) -> None:
    """Write one entry on ``connection``, in the caller's transaction (a change and its entry go together)."""
    if not isinstance(by, Actor):
        raise StoreError("a change to the store names who makes it (an Actor)")
    connection.execute(insert(audit).values(
        ts=utcnow(), actor=by.name[:_SHORT], actor_kind=by.kind, origin=by.origin[:_SHORT], action=action,
        target=target[:_SHORT], before=json_safe(before), after=json_safe(after)))


class AuditStore:
    """The audit table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def record_event(self, by: Actor, action: str, target: str, detail: dict | None = None) -> None:
        """Record what changes nothing in the store but belongs in the trail: a sign-in, a failed one."""
        with self.engine.begin() as connection:
            write_entry(connection, by, action, target, None, detail)

    @maps_database_errors
    def audit_trail(self, since: datetime | None = None, until: datetime | None = None, *, limit: int | None = None,
                    newest_first: bool = False) -> list[AuditEntry]:
        """Return the entries with ``since <= ts < until`` (either open), oldest first unless ``newest_first``."""
        query = select(audit)
        if since is not None:
            query = query.where(audit.c.ts >= since)
        if until is not None:
            query = query.where(audit.c.ts < until)
        order = (audit.c.ts.desc(), audit.c.id.desc()) if newest_first else (audit.c.ts, audit.c.id)
        query = query.order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [AuditEntry(**row._asdict()) for row in connection.execute(query)]
