"""Create, find and change managed API keys; only a hash of each secret is kept."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ollama_proxy.store.audit import Actor, changed, write_entry
from ollama_proxy.store.budgets import drop_held
from ollama_proxy.store.errors import Conflict, Missing, StoreError, maps_database_errors
from ollama_proxy.store.schema import api_keys, teams, utcnow
from ollama_proxy.store.values import checked_share

SECRET_PREFIX = "op-"
SECRET_BYTES = 32  # random bytes in a secret: 43 characters of URL-safe base64
_SECRET_SHAPE = re.compile(re.escape(SECRET_PREFIX) + "[A-Za-z0-9_-]{43}")
PREFIX_LENGTH = len(SECRET_PREFIX) + 8  # what a listing or a log shows of a secret
OWNER_LENGTH = 255  # the api_keys.owner column
# The name the file gives a token it lists without one (config.tokens): no key takes it, even before such a token is.
_POSITIONAL_TOKEN = re.compile(r"(generate|manage|metrics)#[0-9]+")
SCOPES = ("generate", "manage")
_CHANGEABLE = {"scope", "models", "rpm", "tpm", "expires_at", "enabled", "chat_log", "weight", "klass",
               "trusted_frontend", "web", "cloud", "team", "owner"}


@dataclass(frozen=True)
class ApiKey:
    """One managed key as stored, without its secret."""

    id: int
    name: str
    prefix: str
    scope: str
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    expires_at: datetime | None
    enabled: bool
    created_at: datetime
    last_used_at: datetime | None
    chat_log: bool | None = None  # None: as chat_logs.enabled says
    weight: float = 1.0  # its share of the GPUs against other principals'
    klass: str = "interactive"  # or "batch": waits behind interactive work, with ageing
    trusted_frontend: bool = False  # may name the end user a request is for (access.end_users)
    web: bool = False  # may use Ollama's web search and fetch (access.api_routes)
    cloud: bool = False  # may use cloud models, which run on ollama.com (access.cloud_models)
    team: str | None = None  # the team whose models, limits and class bound it (store.teams)
    owner: str | None = None  # the person who answers for it (their sign-on subject); None: the operator (the CLI)
    service: bool = False  # a service's key: its owner is the person named responsible for it, not its user
    previous_until: datetime | None = None  # the secret its last rotation replaced works until then; None: none

    def previous_works(self, now: datetime) -> bool:
        """Tell whether the secret the key had before its last rotation still works (a grace period runs)."""
        return self.previous_until is not None and self.previous_until > now

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def last_day(self) -> date | None:
        """Return the last UTC day the key works: the day an operator gave as its expiry."""
        return None if self.expires_at is None else last_day_before(self.expires_at)

    def usable(self, now: datetime) -> bool:
        return self.enabled and not self.expired(now)


def expiry_after(day: date) -> datetime:
    """Return when a key that works all of ``day`` (UTC) expires: the midnight after it."""
    return datetime.combine(day + timedelta(days=1), time(), timezone.utc)


def last_day_before(expires_at: datetime) -> date:
    """Return the last UTC day a key expiring at ``expires_at`` works: at midnight, the day before."""
    return (expires_at.astimezone(timezone.utc) - timedelta(microseconds=1)).date()


@dataclass(frozen=True)
class FoundSecret:
    """A key found by a secret: its current one (``retired_at`` None), or the one its last rotation replaced,
    which works until ``retired_at``."""

    key: ApiKey
    retired_at: datetime | None = None

    def refused(self, now: datetime) -> bool:
        return self.retired_at is not None and self.retired_at <= now


def hash_secret(secret: str) -> str:
    """Hash a key's secret: sha256 suffices for 32 random bytes, which no one can guess."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def is_secret_shaped(token: str) -> bool:
    """Tell whether a token looks like a secret ``new_secret`` makes: no other can be a key's."""
    return _SECRET_SHAPE.fullmatch(token) is not None


def _row_to_key(row) -> ApiKey:
    values = {name: getattr(row, name) for name in ApiKey.__dataclass_fields__}
    values["models"] = tuple(values["models"] or ())
    return ApiKey(**values)


def _checked(fields: dict) -> dict:
    """Check the fields a caller sets, so nonsense never reaches the table."""
    if "scope" in fields and fields["scope"] not in SCOPES:
        raise StoreError(f"scope must be one of {', '.join(SCOPES)}")
    checked_share(fields)
    if fields.get("chat_log") not in (None, True, False):
        raise StoreError("chat_log must be true, false or none")
    for flag in ("trusted_frontend", "web", "cloud", "service"):
        if flag in fields and fields[flag] not in (True, False):
            raise StoreError(f"{flag} must be true or false")
    for moment in ("expires_at", "last_used_at"):
        value = fields.get(moment)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise StoreError(f"{moment} must be a datetime with a time zone")
    if fields.get("team") is not None and not isinstance(fields["team"], str):
        raise StoreError("team must be a team's name or none")
    owner = fields.get("owner")
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > OWNER_LENGTH):
        raise StoreError(f"owner must be 1 to {OWNER_LENGTH} characters, or none")
    return fields


def _team_exists(connection, fields: dict, lock: bool = False) -> None:
    """Refuse a team that does not exist; ``lock``: hold its row until the transaction ends (PostgreSQL), so
    that one person's keys in it are counted one transaction at a time."""
    team = fields.get("team")
    if team is None:
        return
    query = select(teams.c.id).where(teams.c.name == team)
    if connection.execute(query.with_for_update() if lock else query).first() is None:
        raise Missing(f"no team named '{team}' (ollama-proxy teams create {team})")


def _within_cap(connection, owner: str, most: int) -> None:
    """Refuse a key (its transaction rolls back) that makes its owner own more than ``most``.

    Counted after the insert, in its transaction: SQLite lets one writer in at a time, and PostgreSQL
    waits on the team's row (``_team_exists``), so keys made at once are counted one after the other.
    """
    owned = connection.execute(select(func.count()).where(api_keys.c.owner == owner)).scalar_one()
    if owned > most:
        raise StoreError(f"one person may own at most {most} keys (admin.max_keys_per_member); "
                         "revoke one to make another")


def _check_handover(key: ApiKey, owner: str | None) -> None:
    """Refuse to give a key another owner unless it is a service key, handed to a person (never to no one)."""
    if not key.service:
        raise StoreError(f"the key '{key.name}' is its owner's own: only a service key changes hands")
    if owner is None:
        raise StoreError("a service key names the person responsible for it (its owner)")


class KeyStore:
    """The api_keys table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def create_key(self, name: str, *, by: Actor, scope: str = "generate", models=(), rpm: int | None = None,
                   tpm: int | None = None, expires_at: datetime | None = None,
                   chat_log: bool | None = None, weight: float = 1.0, klass: str = "interactive",
                   trusted_frontend: bool = False, web: bool = False, cloud: bool = False,
                   team: str | None = None, owner: str | None = None, service: bool = False,
                   reserved: Collection[str] = (), max_owned: int | None = None) -> tuple[ApiKey, str]:
        """Create a key; return it and its secret, which is shown this once and never stored.

        ``owner``: the person who answers for it; it stays theirs (only a service key changes hands, with
        ``update_key``), and they own at most ``max_owned`` keys. ``service``: a service's key, whose owner is
        the person named responsible for it. ``reserved``: the names of the file's tokens, which share rate
        limits, GPU shares, budgets and usage by name with the keys: no key may take one.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise StoreError("a key's name is 1 to 100 characters")
        if name in reserved or _POSITIONAL_TOKEN.fullmatch(name):
            raise Conflict(f"'{name}' is the name of a token of the configuration file; give the key another")
        fields = _checked({"scope": scope, "models": models, "rpm": rpm, "tpm": tpm, "expires_at": expires_at,
                           "chat_log": chat_log, "weight": weight, "klass": klass,
                           "trusted_frontend": trusted_frontend, "web": web, "cloud": cloud, "team": team,
                           "owner": owner, "service": service})
        if service and owner is None:
            raise StoreError("a service key names the person responsible for it (its owner)")
        secret = new_secret()
        values = dict(fields, name=name, prefix=secret[:PREFIX_LENGTH], secret_hash=hash_secret(secret),
                      enabled=True, created_at=utcnow(), last_used_at=None)
        try:
            with self.engine.begin() as connection:
                _team_exists(connection, fields, lock=max_owned is not None)
                connection.execute(insert(api_keys).values(**values))
                if max_owned is not None and owner is not None:
                    _within_cap(connection, owner, max_owned)
                drop_held(connection, by, "key", name)  # a late charge of a deleted key of this name
                key = _read(connection, name)
                write_entry(connection, by, "key.create", name, None, key_record(key))
        except IntegrityError:
            raise Conflict(f"a key named '{name}' exists already") from None
        return key, secret

    @maps_database_errors
    def list_keys(self, *, team: str | None = None, owner: str | None = None) -> list[ApiKey]:
        """Every key by name; only a team's keys with ``team``, only someone's own with ``owner``."""
        query = select(api_keys).order_by(api_keys.c.name)
        if team is not None:
            query = query.where(api_keys.c.team == team)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        with self.engine.connect() as connection:
            return [_row_to_key(r) for r in connection.execute(query)]

    @maps_database_errors
    def get_key(self, name: str) -> ApiKey | None:
        with self.engine.connect() as connection:
            return _read(connection, name)

    def find_key(self, secret: str) -> ApiKey | None:
        """Return the key whose secret this is (enabled or not, expired or not), or whose secret it was before a
        rotation while its grace period runs; else None."""
        found = self.find_secret(secret)
        return None if found is None or found.refused(utcnow()) else found.key

    @maps_database_errors
    def find_secret(self, secret: str) -> FoundSecret | None:
        """Return the key whose current secret this is, or whose secret it was before its last rotation (with
        when that one stops working, gone by or not); else None."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) <= PREFIX_LENGTH:
            return None
        wanted, prefix = hash_secret(secret).encode(), secret[:PREFIX_LENGTH]
        query = select(api_keys).where(or_(api_keys.c.prefix == prefix, api_keys.c.previous_prefix == prefix))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        found = None
        for row in rows:  # a prefix may be shared; compare every hash, in constant time
            current = hmac.compare_digest(row.secret_hash.encode(), wanted)
            previous = hmac.compare_digest((row.previous_secret_hash or "").encode(), wanted)
            if (current or previous) and found is None:
                found = FoundSecret(_row_to_key(row), None if current else row.previous_until)
        return found

    @maps_database_errors
    def update_key(self, name: str, *, by: Actor, **fields) -> ApiKey:
        """Change some of a key's fields (not its name or secret); return the key as it now is."""
        unknown = set(fields) - _CHANGEABLE
        if unknown:
            raise StoreError(f"cannot change {', '.join(sorted(unknown))} of a key")
        fields = _checked(dict(fields))
        with self.engine.begin() as connection:
            before = _read(connection, name)
            if before is None:
                raise Missing(f"no key named '{name}'")
            if not fields:
                return before
            _team_exists(connection, fields)
            if fields.get("owner", before.owner) != before.owner:
                _check_handover(before, fields["owner"])
            connection.execute(update(api_keys).where(api_keys.c.name == name).values(**fields))
            after = _read(connection, name)
            was, now = changed(key_record(before), key_record(after))
            if now:
                write_entry(connection, by, "key.update", name, was, now)
        return after

    @maps_database_errors
    def rotate_key(self, name: str, *, by: Actor, grace: timedelta = timedelta(0)) -> tuple[ApiKey, str]:
        """Give a key a new secret; return the key and the secret, which is shown this once and never stored.

        The key stays itself (its id, settings, team, owner, budgets and usage). The old secret works ``grace``
        longer, then never again. One old secret is kept: rotating again within a grace period ends it at once.
        """
        if not isinstance(grace, timedelta) or grace < timedelta(0):
            raise StoreError("a grace period is a duration of 0 or more")
        secret = new_secret()
        with self.engine.begin() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.name == name)).first()
            if row is None:
                raise Missing(f"no key named '{name}'")
            until = utcnow() + grace
            connection.execute(update(api_keys).where(api_keys.c.id == row.id).values(
                prefix=secret[:PREFIX_LENGTH], secret_hash=hash_secret(secret), previous_prefix=row.prefix,
                previous_secret_hash=row.secret_hash, previous_until=until))
            key = _read(connection, name)
            write_entry(connection, by, "key.rotate", name, {"prefix": row.prefix},
                        {"prefix": key.prefix, "grace_seconds": grace.total_seconds(), "old_secret_until": until})
        return key, secret

    @maps_database_errors
    def touch_key(self, name: str, when: datetime) -> None:
        """Note when a key was last used (the proxy's own bookkeeping: no entry in the audit trail)."""
        _checked({"last_used_at": when})
        with self.engine.begin() as connection:
            connection.execute(update(api_keys).where(api_keys.c.name == name).values(last_used_at=when))

    @maps_database_errors
    def delete_key(self, name: str, *, by: Actor) -> None:
        with self.engine.begin() as connection:
            before = _read(connection, name)
            if before is None:
                raise Missing(f"no key named '{name}'")
            connection.execute(delete(api_keys).where(api_keys.c.name == name))
            drop_held(connection, by, "key", name)
            write_entry(connection, by, "key.delete", name, key_record(before), None)


def _read(connection, name: str) -> ApiKey | None:
    row = connection.execute(select(api_keys).where(api_keys.c.name == name)).first()
    return None if row is None else _row_to_key(row)


# What the audit trail leaves out of a key's record: its row's id, and what no one changes by hand.
_UNRECORDED = ("id", "last_used_at", "previous_until")


def key_record(key: ApiKey) -> dict:
    """What the audit trail keeps of a key: its fields but the bookkeeping; its prefix, never its secret; its
    expiry as the last day it works when it ends at a midnight (as ``--expires`` and the admin page take it)."""
    record = {name: getattr(key, name) for name in ApiKey.__dataclass_fields__ if name not in _UNRECORDED}
    if key.expires_at is not None and key.expires_at.astimezone(timezone.utc).time() == time():
        record["expires_at"] = key.last_day().isoformat()
    return record
