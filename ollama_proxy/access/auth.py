"""Decide who is calling and what they may do.

A request carries a token as ``Authorization: <token>``, ``Authorization:
Bearer <token>`` or ``x-api-key: <token>``. The token is looked up in the
configured lists (compared in constant time), then among the managed keys of
the store, and becomes a ``Principal``: its scope decides whether it may call a
management endpoint, its model patterns which models it may use.

A worker keeps what it read of a managed key for ``auth.key_cache_seconds``, so
the hot path seldom reaches the database; a disabled or deleted key stops
working within that bound, an expired one at once. So does a key's old secret after a rotation: within
that bound without a grace period, at once when its grace period ends. A key a person made for
themselves works while the identity provider vouches for its owner
(``membership``): it lapses at once when the last confirmation grows older than
``admin.oidc.membership_max_age``, and within the cache's bound when a re-check
finds its owner gone. Tokens the store does not know are remembered apart, in a
cache of their own, so a flood of made-up tokens can neither push a valid key
out nor reach the database twice for one token; a token that is not shaped like
a secret is never looked up at all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cachetools import TTLCache
from flask import Flask, current_app, request

from ollama_proxy.access.end_users import named_end_user
from ollama_proxy.access.membership import lapse
from ollama_proxy.config import AuthSettings, Token
from ollama_proxy.config.access import token_names
from ollama_proxy.errors import Forbidden, ProxyError, Unauthorized
from ollama_proxy.ledger import access_record
from ollama_proxy.routing.names import matches_any
from ollama_proxy.scheduler.decisions.fairness import BATCH
from ollama_proxy.store import ApiKey, DatabaseError, Member, Store, Team, current_store
from ollama_proxy.store.keys import is_secret_shaped
from ollama_proxy.surfaces import GENERATE, MANAGE, PUBLIC, ollama_path, surface_of

log = logging.getLogger(__name__)

METRICS = "metrics"  # a scraper's token: /metrics and nothing else

# The proxy's own paths anyone may call: a load balancer's probe carries no token; the API description holds
# no secret; a browser asks for the icon with none. (Ollama's paths say their scope in ``surfaces.OLLAMA_PATHS``;
# the admin page has its own login.)
PUBLIC_PATHS = ("/health", "/openapi.json", "/favicon.ico")
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str
    models: tuple[str, ...] = ()  # glob patterns; empty = every model
    rpm: int | None = None  # requests per minute; None: unlimited
    tpm: int | None = None  # tokens per minute; None: unlimited
    chat_log: bool | None = None  # its chats logged (True), not (False), or as chat_logs.enabled (None)
    weight: float = 1.0  # its share of the GPUs against other principals'
    klass: str = "interactive"  # or "batch": waits behind interactive work
    trusted_frontend: bool = False  # may name the end user it calls for (each gets a share of its own)
    web: bool = False  # may use Ollama's web search and fetch (access.api_routes)
    cloud: bool = False  # may use cloud models, which run on ollama.com (access.cloud_models)
    # The team a managed key belongs to (store.teams): its models bound the key's, its share holds the key's,
    # and its limits count all its keys together.
    team: str | None = None
    team_weight: float = 1.0
    team_models: tuple[str, ...] = ()
    team_rpm: int | None = None
    team_tpm: int | None = None
    owner: str | None = None  # who owns the managed key (their sign-on subject): their budget holds it too
    key_id: int | None = None  # the managed key's row (api_keys.id, never reused); None: a token of the file
    team_id: int | None = None  # the team's row (teams.id, never reused)

    @property
    def id(self) -> str:
        """What counts the principal's requests: ``key:12``, a managed key's row, or ``token:bob``, a token of the
        file. Unlike the name, a key deleted and made again under it gets a new one: a new window, share and usage."""
        return f"token:{self.name}" if self.key_id is None else f"key:{self.key_id}"

    @property
    def team_ref(self) -> str | None:
        """What counts the team's requests, as ``id`` does the principal's: ``team:3``; None without a team."""
        if self.team is None:
            return None
        return f"team:{self.team if self.team_id is None else self.team_id}"  # no id: a principal made by hand

    def may(self, scope: str) -> bool:
        return self.scope == MANAGE or self.scope == scope

    @property
    def said(self) -> str:
        """The principal as a refusal names it: ``token 'bob'``, ``token 'bob' of team 'research'``."""
        return f"token '{self.name}'" + (f" of team '{self.team}'" if self.team is not None else "")

    def may_use(self, model: str) -> bool:
        """Tell whether the patterns name the model, the team's too (``names.matches``: ``Llama3.2`` is
        ``llama3.2:latest``)."""
        return all(not patterns or matches_any(model, patterns) for patterns in (self.models, self.team_models))


class TokenTable:
    """Look tokens up without leaking, through timing, which one nearly matched."""

    def __init__(self, settings: AuthSettings, metrics_tokens: tuple[Token, ...] = ()):
        self._entries = [(t.secret.encode(), Principal(t.name, scope, rpm=t.rpm, tpm=t.tpm, chat_log=t.chat_log,
                                                       weight=t.weight, klass=t.klass,
                                                       trusted_frontend=t.trusted_frontend, web=t.web,
                                                       cloud=t.cloud))
                         for scope, tokens in ((MANAGE, settings.manage_tokens), (GENERATE, settings.generate_tokens))
                         for t in tokens]
        self._entries += [(t.secret.encode(), Principal(t.name, METRICS)) for t in metrics_tokens]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Principal | None:
        candidate = token.encode()
        found = None
        for secret, principal in self._entries:
            # Compare with every entry, so the time taken does not tell where it matched.
            if hmac.compare_digest(secret, candidate) and found is None:
                found = principal
        return found


# What a worker keeps of a managed key's secret: the key, its team, its owner's membership, and when the secret
# stops working (an old one a rotation replaced; None: the current one).
_Found = tuple[ApiKey, Team | None, Member | None, datetime | None]


class ManagedKeys:
    """Look managed keys up in the store, through short-lived per-worker caches.

    Keys found (enabled or not) and tokens found to be no key live in separate
    caches, each with its own bound: unknown tokens only ever push out other
    unknown tokens. Only a usable key's look-up writes (its last use).
    """

    def __init__(self, store, settings: AuthSettings, clock: Callable[[], float] = time.monotonic,
                 token_names: frozenset[str] = frozenset(), membership_max_age: float = 86400.0):
        self._store = store  # a callable returning the Store: it is opened on first use
        self._token_names = token_names  # no key may be known by one (``store.keys``), not even an older key
        self._membership_max_age = membership_max_age  # admin.oidc's: how long an owner's confirmation holds
        self._found: TTLCache = TTLCache(settings.key_cache_size, settings.key_cache_seconds, clock)
        self._unknown: TTLCache = TTLCache(settings.unknown_key_cache_size, settings.unknown_key_cache_seconds,
                                           clock)

    def find(self, token: str, now: datetime) -> Principal | None:
        """Return the principal of a usable key; raise Unauthorized for a disabled or expired one."""
        if not is_secret_shaped(token):
            return None
        found = self._key(token, now)
        if found is None:
            return None
        key, team, member, retired_at = found
        if retired_at is not None and retired_at <= now:
            raise Unauthorized(f"key '{key.name}' was rotated: this secret stopped working at {retired_at.isoformat()}")
        if not key.enabled:
            raise Unauthorized(f"key '{key.name}' is disabled")
        if key.expired(now):
            raise Unauthorized(f"key '{key.name}' expired at {key.expires_at.isoformat()}")
        lapsed = self._lapse(key, member, now)
        if lapsed is not None:
            raise Unauthorized(f"key '{key.name}' {lapsed}")
        if key.name in self._token_names:
            # A token added to the file under an existing key's name: the two would share limits, share and usage.
            log.error("key '%s' has the name of a token of the configuration file: it is refused", key.name)
            raise Unauthorized(f"key '{key.name}' has the name of a token of the configuration file")
        return principal_of(key, team)

    def _lapse(self, key: ApiKey, member: Member | None, now: datetime) -> str | None:
        """Why a key its owner made on My keys no longer works on their membership; None while it does, or for an
        admin's key."""
        return None if key.owner is None else lapse(member, key.team, now, self._membership_max_age)

    def _key(self, token: str, now: datetime) -> _Found | None:
        """Return the key of a secret, its team, its owner's membership and when the secret stops working (an old
        one after a rotation), from a cache when either holds the answer, else from the store."""
        digest = hashlib.sha256(token.encode()).digest()  # the caches hold no secret
        found = self._found.get(digest)
        if found is not None or digest in self._unknown:
            return found
        found = self._load(token, now)
        if found is None:
            self._unknown[digest] = True
        else:
            self._found[digest] = found
        return found

    def _load(self, token: str, now: datetime) -> _Found | None:
        try:
            store: Store = self._store()  # opened on a worker's first use: that can fail too
            found = store.find_secret(token)
            if found is None:
                return None
            key = found.key
            member = store.get_member(key.owner) if key.owner is not None else None
            if key.usable(now) and not found.refused(now) and self._lapse(key, member, now) is None:
                store.touch_key(key.name, now)  # once per key per cache period
            return key, store.get_team(key.team) if key.team is not None else None, member, found.retired_at
        except DatabaseError as exc:
            log.error("the key store failed: %s", exc.reason)
            raise ProxyError("the key store cannot be reached; try again shortly", status=503) from None


def principal_of(key: ApiKey, team: Team | None) -> Principal:
    """The principal a managed key stands for: its own settings, bounded by its team's (batch if either says so)."""
    klass = BATCH if BATCH in (key.klass, getattr(team, "klass", None)) else key.klass
    principal = Principal(key.name, key.scope, key.models, key.rpm, key.tpm, chat_log=key.chat_log,
                          weight=key.weight, klass=klass, trusted_frontend=key.trusted_frontend, web=key.web,
                          cloud=key.cloud, owner=key.owner, key_id=key.id)
    if team is None:
        return principal
    return replace(principal, team=team.name, team_weight=team.weight, team_models=team.models,
                   team_rpm=team.rpm, team_tpm=team.tpm, team_id=team.id)


def token_from_headers(headers) -> str | None:
    """Return the token a request carries, or None."""
    value = headers.get("Authorization", "").strip()
    if value:
        scheme, _, rest = value.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value
    return headers.get("x-api-key", "").strip() or None


def required_scope(path: str) -> str | None:
    """Return the scope a path needs, or None if it is public."""
    if path in PUBLIC_PATHS or surface_of(path).name == "admin":  # the admin page checks its own session
        return None
    if path == METRICS_PATH:
        return METRICS
    listed = ollama_path(path)
    # A route the proxy does not list passes here: the native blueprint answers 404 to a token that may not manage.
    scope = listed.scope if listed is not None else GENERATE
    return None if scope == PUBLIC else scope


def authenticate() -> None:
    """Put the caller on the request's record (``ledger.current_caller``) or refuse the request."""
    scope = required_scope(request.path)
    if scope is None or request.method == "OPTIONS":
        return  # CORS preflight carries no credentials by design
    token = token_from_headers(request.headers)
    if token is None:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' or 'x-api-key: <token>'")
    principal = current_app.extensions["ollama_proxy.tokens"].find(token)
    if principal is None:
        principal = current_app.extensions["ollama_proxy.keys"].find(token, datetime.now(timezone.utc))
    if principal is None:
        raise Unauthorized("invalid token")
    record = access_record(request.environ)
    if record is not None:
        record.caller = principal
        record.principal, record.principal_id, record.key_id = principal.name, principal.id, principal.key_id
        record.team, record.team_id = principal.team, principal.team_id
        record.end_user = named_end_user(principal, request.headers)
    if not principal.may(scope):
        needed = "a manage or metrics token" if scope == METRICS else "a manage token"
        raise Forbidden(f"token '{principal.name}' may not call {request.path}: it needs {needed}")


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["ollama_proxy.tokens"] = TokenTable(settings.auth, settings.metrics.tokens)
    app.extensions["ollama_proxy.keys"] = ManagedKeys(lambda: current_store(app), settings.auth,
                                                      token_names=token_names(settings),
                                                      membership_max_age=settings.admin.oidc.membership_max_age)
    app.before_request(authenticate)
