"""Create, find and change managed API keys; only a hash of each secret is kept."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ollama_proxy.scheduler.fairness import CLASSES, MAX_WEIGHT
from ollama_proxy.store.errors import Conflict, Missing, StoreError, maps_database_errors
from ollama_proxy.store.schema import api_keys, utcnow

SECRET_PREFIX = "op-"
SECRET_BYTES = 32  # random bytes in a secret: 43 characters of URL-safe base64
_SECRET_SHAPE = re.compile(re.escape(SECRET_PREFIX) + "[A-Za-z0-9_-]{43}")
PREFIX_LENGTH = len(SECRET_PREFIX) + 8  # what a listing or a log shows of a secret
SCOPES = ("generate", "manage")
_CHANGEABLE = {"scope", "models", "rpm", "tpm", "expires_at", "enabled", "last_used_at", "chat_log", "weight", "klass",
               "trusted_frontend", "web", "cloud"}


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

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def usable(self, now: datetime) -> bool:
        return self.enabled and not self.expired(now)


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
    if "models" in fields:
        models = fields["models"] or ()
        if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
            raise StoreError("models must be a list of non-empty glob patterns")
        fields["models"] = list(models)
    for limit in ("rpm", "tpm"):
        value = fields.get(limit)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise StoreError(f"{limit} must be a positive whole number or none")
    if fields.get("chat_log") not in (None, True, False):
        raise StoreError("chat_log must be true, false or none")
    if "weight" in fields:
        weight = fields["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_WEIGHT:
            raise StoreError(f"weight must be a number above 0, at most {MAX_WEIGHT:g}")
        fields["weight"] = float(weight)
    if "klass" in fields and fields["klass"] not in CLASSES:
        raise StoreError(f"class must be one of {', '.join(CLASSES)}")
    for flag in ("trusted_frontend", "web", "cloud"):
        if flag in fields and fields[flag] not in (True, False):
            raise StoreError(f"{flag} must be true or false")
    for moment in ("expires_at", "last_used_at"):
        value = fields.get(moment)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise StoreError(f"{moment} must be a datetime with a time zone")
    return fields


class KeyStore:
    """The api_keys table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def create_key(self, name: str, *, scope: str = "generate", models=(), rpm: int | None = None,
                   tpm: int | None = None, expires_at: datetime | None = None,
                   chat_log: bool | None = None, weight: float = 1.0, klass: str = "interactive",
                   trusted_frontend: bool = False, web: bool = False, cloud: bool = False) -> tuple[ApiKey, str]:
        """Create a key; return it and its secret, which is shown this once and never stored."""
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise StoreError("a key's name is 1 to 100 characters")
        fields = _checked({"scope": scope, "models": models, "rpm": rpm, "tpm": tpm, "expires_at": expires_at,
                           "chat_log": chat_log, "weight": weight, "klass": klass,
                           "trusted_frontend": trusted_frontend, "web": web, "cloud": cloud})
        secret = new_secret()
        values = dict(fields, name=name, prefix=secret[:PREFIX_LENGTH], secret_hash=hash_secret(secret),
                      enabled=True, created_at=utcnow(), last_used_at=None)
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(api_keys).values(**values))
        except IntegrityError:
            raise Conflict(f"a key named '{name}' exists already") from None
        return self.get_key(name), secret

    @maps_database_errors
    def list_keys(self) -> list[ApiKey]:
        with self.engine.connect() as connection:
            return [_row_to_key(r) for r in connection.execute(select(api_keys).order_by(api_keys.c.name))]

    @maps_database_errors
    def get_key(self, name: str) -> ApiKey | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.name == name)).first()
        return None if row is None else _row_to_key(row)

    def _existing(self, name: str) -> ApiKey:
        key = self.get_key(name)
        if key is None:
            raise Missing(f"no key named '{name}'")
        return key

    @maps_database_errors
    def find_key(self, secret: str) -> ApiKey | None:
        """Return the key whose secret this is (enabled or not, expired or not), or None."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) <= PREFIX_LENGTH:
            return None
        wanted = hash_secret(secret).encode()
        query = select(api_keys).where(api_keys.c.prefix == secret[:PREFIX_LENGTH])
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        found = None
        for row in rows:  # a prefix may be shared; compare every hash, in constant time
            if hmac.compare_digest(row.secret_hash.encode(), wanted) and found is None:
                found = _row_to_key(row)
        return found

    @maps_database_errors
    def update_key(self, name: str, **fields) -> ApiKey:
        """Change some of a key's fields (not its name or secret); return the key as it now is."""
        unknown = set(fields) - _CHANGEABLE
        if unknown:
            raise StoreError(f"cannot change {', '.join(sorted(unknown))} of a key")
        fields = _checked(dict(fields))
        if not fields:
            return self._existing(name)
        with self.engine.begin() as connection:
            changed = connection.execute(update(api_keys).where(api_keys.c.name == name).values(**fields))
        if changed.rowcount == 0:
            raise Missing(f"no key named '{name}'")
        return self._existing(name)

    @maps_database_errors
    def delete_key(self, name: str) -> None:
        with self.engine.begin() as connection:
            deleted = connection.execute(delete(api_keys).where(api_keys.c.name == name))
        if deleted.rowcount == 0:
            raise Missing(f"no key named '{name}'")
