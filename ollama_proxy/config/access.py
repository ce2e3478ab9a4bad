"""Declare who may call the proxy: the ``auth:``, ``admin:`` and ``ratelimit:`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from marshmallow import validate

from ollama_proxy.config.checks import AT_LEAST_0, AT_LEAST_1, DATABASE_URL, NON_EMPTY, SECONDS
from ollama_proxy.config.declare import setting
from ollama_proxy.config.identity import OidcSettings, complete
from ollama_proxy.config.paths import rooted_sqlite, under_project_root
from ollama_proxy.config.tokens import Token, TokenList

# Hash formats werkzeug.security.check_password_hash reads ("method:params$salt$hash").
PASSWORD_HASH = validate.Regexp(r"^((scrypt|pbkdf2)(:[^$]*)?\$[^$]+\$[0-9a-f]+)?$",
                                error="not a password hash: make one with `ollama-proxy admin-password`")


@dataclass(frozen=True)
class AuthSettings:
    # Tokens from the environment keep secrets out of a YAML file that may be shared.
    generate_tokens: tuple[Token, ...] = setting(
        (), field=partial(TokenList, "generate"), env="OLLAMA_PROXY_GENERATE_TOKENS",
        help="tokens for inference and listing; each a string or `{name, token}`")
    manage_tokens: tuple[Token, ...] = setting(
        (), field=partial(TokenList, "manage"), env="OLLAMA_PROXY_MANAGE_TOKENS",
        help="tokens that may also pull, push, create, copy, delete models and upload blobs")
    key_cache_seconds: float = setting(
        5.0, validate=AT_LEAST_0,
        help="seconds a worker trusts what it read of a managed key: a disabled or deleted key stops working "
             "within this bound (an expired one at once)")
    key_cache_size: int = setting(10000, validate=AT_LEAST_1, help="managed keys a worker remembers")
    unknown_key_cache_seconds: float = setting(
        60.0, validate=AT_LEAST_0,
        help="seconds a worker remembers that a token is no managed key (no key can later get that secret)")
    unknown_key_cache_size: int = setting(
        10000, validate=AT_LEAST_1,
        help="tokens found to be no managed key that a worker remembers, apart from the keys, so a flood of "
             "made-up tokens neither pushes a valid key out nor reaches the store twice for one token")


@dataclass(frozen=True)
class AdminSettings:
    username: str = setting("admin", validate=validate.Length(min=1, max=100), help="the admin page's user name")
    password_hash: str = setting(
        "", validate=PASSWORD_HASH, env="OLLAMA_PROXY_ADMIN_PASSWORD_HASH", repr=False,
        help="hash printed by `ollama-proxy admin-password` (a werkzeug hash, `scrypt:...` or `pbkdf2:...`); "
             "empty: no password login (and the page is off unless `oidc` is on)")
    secret_key: str = setting(
        "", env="OLLAMA_PROXY_ADMIN_SECRET_KEY", repr=False,
        help="signs session cookies; empty: a random key is generated into `admin.secret_key_file`")
    secret_key_file: str = setting(
        "data/admin-secret-key", validate=NON_EMPTY, then=under_project_root, env="OLLAMA_PROXY_ADMIN_SECRET_KEY_FILE",
        help="where the generated key is kept (mode 600), relative to the project root unless absolute; "
             "kept out of git")
    cookie_secure: bool = setting(
        True, env="OLLAMA_PROXY_ADMIN_COOKIE_SECURE",
        help="send the session cookie over HTTPS only (`false` to log in over plain HTTP on a trusted LAN: "
             "the cookie and the password then cross it readable). A browser keeps no such cookie from a plain "
             "`http://` page of another machine: signing in there fails, and the login page says so")
    session_lifetime: float = setting(8 * 3600.0, validate=SECONDS, help="seconds a login lasts (8 hours)")
    login_attempts: int = setting(
        5, validate=AT_LEAST_1,
        help="failed logins allowed per client address and user name within `login_window`; "
             "then the form answers 429 until it ends")
    login_window: int = setting(
        300, validate=AT_LEAST_1,
        help="seconds over which failed logins are counted, from the first failure (counted in "
             "`ratelimit.storage_url`, so every worker and instance sees one count)")
    login_address_attempts: int = setting(
        20, validate=AT_LEAST_1,
        help="login attempts (any user name, right or wrong) allowed per client address within `login_window`; "
             "each one hashes a password (scrypt), so this bounds the CPU too")
    dashboard_days: int = setting(
        30, validate=validate.Range(min=1, max=366), help="days the dashboard's charts cover (at most 366)")
    usage_rows: int = setting(
        500, validate=AT_LEAST_1,
        help="usage rows shown on the usage page (the newest); the CSV export has them all")
    export_rows: int = setting(
        100_000, validate=AT_LEAST_1, help="most rows in one CSV export (narrow the dates for more)")
    audit_rows: int = setting(
        500, validate=AT_LEAST_1,
        help="audit trail entries shown on the audit page (the newest); `ollama-proxy audit` lists them all")
    max_keys_per_member: int = setting(
        10, validate=AT_LEAST_1,
        help="keys one person may own at once: made on **My keys** or the keys page, or service keys they are "
             "named responsible for (docs/keys.md); one more is refused until they revoke one (an admin's own "
             "making is not refused)")
    secret_shown_within: float = setting(
        300.0, validate=SECONDS,
        help="seconds a new key's secret waits in the store, sealed, for the page that shows it once after the "
             "create form (the session cookie holds only a handle and a one-time pad); then it is dropped unseen")

    oidc: OidcSettings = setting(
        OidcSettings(), validate=complete,
        help="sign-in with an OpenID Connect provider (docs/oidc.md): its claims give each person a role")

    @property
    def enabled(self) -> bool:
        """The page is on when someone can sign in: with the password, or with the identity provider."""
        return bool(self.password_hash) or self.oidc.enabled


def token_names(settings) -> frozenset[str]:
    """The names of the file's tokens (``auth``'s and ``metrics``'), which no managed key may take: a key and a
    token count rate limits, GPU shares, budgets and usage by name."""
    tokens = settings.auth.generate_tokens + settings.auth.manage_tokens + settings.metrics.tokens
    return frozenset(token.name for token in tokens)


@dataclass(frozen=True)
class RateLimitSettings:
    # A Redis URL may carry a password: it may come from the environment.
    storage_url: str = setting(
        "sqlite:///data/ratelimit.db", validate=DATABASE_URL, then=rooted_sqlite,
        env="OLLAMA_PROXY_RATELIMIT_STORAGE_URL",
        help="where rate-limit counters live: a SQLite file (the workers of one instance) or "
             "`redis://host:port/db` (several instances); a relative `sqlite:///` path is under the project root")
    storage_timeout: float = setting(
        5.0, validate=SECONDS, help="seconds to wait for the counters (SQLite lock, Redis connection)")

    @property
    def redis_url(self) -> str | None:
        """The storage URL if it is a Redis, through which instances also share one scheduler; else None."""
        return self.storage_url if self.storage_url.startswith(("redis://", "rediss://", "unix://")) else None
