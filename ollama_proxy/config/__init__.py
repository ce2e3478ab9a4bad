"""Load the YAML configuration, apply environment overrides, and check it.

Every key is declared once, in the schemas below, with its type, its default
and a line of help. The result is a frozen ``Settings`` object kept on the app.
Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, post_load, validate

from ollama_proxy.config.backends import (  # noqa: F401 (settings types are imported from here)
    DEFAULT_SERVER,
    SECONDS,
    ModelFacts,
    OllamaServerSettings,
    ProviderSettings,
    RetrySchema,
    RetrySettings,
    RoutingSchema,
    RoutingSettings,
    StrictSchema,
    backends_field,
)
from ollama_proxy.config.models import ModelOverride, ModelsSchema, ModelsSettings  # noqa: F401

CONFIG_ENV = "OLLAMA_PROXY_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "config.yaml"

# Environment variable -> (section, key). systemd units and containers set these.
ENV_OVERRIDES = {
    "OLLAMA_PROXY_BASE_URL": ("service", "base_url"),
    "OLLAMA_PROXY_CONNECT_TIMEOUT": ("service", "connect_timeout"),
    "OLLAMA_PROXY_READ_TIMEOUT": ("service", "read_timeout"),
    "OLLAMA_PROXY_STREAM_IDLE_TIMEOUT": ("service", "stream_idle_timeout"),
    # How many proxies (nginx) stand in front: set by the deploy, not by whoever edits the YAML.
    "OLLAMA_PROXY_TRUSTED_PROXIES": ("service", "trusted_proxies"),
    "OLLAMA_PROXY_LOG_DIR": ("logging", "dir"),
    "OLLAMA_PROXY_LOG_LEVEL": ("logging", "level"),
    "OLLAMA_PROXY_CORS_ORIGINS": ("cors", "origins"),
    # Tokens from the environment keep secrets out of a YAML file that may be shared.
    "OLLAMA_PROXY_GENERATE_TOKENS": ("auth", "generate_tokens"),
    "OLLAMA_PROXY_MANAGE_TOKENS": ("auth", "manage_tokens"),
    # A PostgreSQL URL carries a password: keep it out of the YAML file too.
    "OLLAMA_PROXY_STORE_URL": ("store", "url"),
    "OLLAMA_PROXY_ADMIN_PASSWORD_HASH": ("admin", "password_hash"),
    "OLLAMA_PROXY_ADMIN_SECRET_KEY": ("admin", "secret_key"),
    "OLLAMA_PROXY_ADMIN_SECRET_KEY_FILE": ("admin", "secret_key_file"),
    # A Redis URL may carry a password.
    "OLLAMA_PROXY_RATELIMIT_STORAGE_URL": ("ratelimit", "storage_url"),
    "OLLAMA_PROXY_METRICS_TOKENS": ("metrics", "tokens"),
}
# prometheus_client's own variable, read by it at import: only the environment can set it
# (deploy/gunicorn.conf.py does, before the workers start).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIST_OVERRIDES = {"OLLAMA_PROXY_CORS_ORIGINS", "OLLAMA_PROXY_GENERATE_TOKENS", "OLLAMA_PROXY_MANAGE_TOKENS",
                   "OLLAMA_PROXY_METRICS_TOKENS"}
_INT_OVERRIDES = {"OLLAMA_PROXY_TRUSTED_PROXIES"}

MiB = 1024 * 1024


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class Token:
    name: str
    secret: str = field(repr=False)
    rpm: int | None = None  # requests per minute; None: no limit
    tpm: int | None = None  # tokens per minute (prompt + completion); None: no limit
    chat_log: bool | None = None  # log this token's chats; None: as chat_logs.enabled says


@dataclass(frozen=True)
class AuthSettings:
    generate_tokens: tuple[Token, ...]
    manage_tokens: tuple[Token, ...]
    key_cache_seconds: float = 5.0
    key_cache_size: int = 10000
    unknown_key_cache_seconds: float = 60.0
    unknown_key_cache_size: int = 10000


@dataclass(frozen=True)
class StoreSettings:
    url: str
    busy_timeout: float
    cache_seconds: float = 5.0


@dataclass(frozen=True)
class ServiceSettings:
    base_url: str
    connect_timeout: float
    read_timeout: float
    stream_idle_timeout: float
    health_timeout: float
    pool_size: int
    stream_ping_interval: float
    health_cache_seconds: float = 2.0
    trusted_proxies: int = 0


@dataclass(frozen=True)
class LimitSettings:
    max_body_bytes: int
    max_blob_bytes: int


@dataclass(frozen=True)
class ImageSettings:
    fetch_urls: bool
    allow_private: bool
    max_bytes: int
    max_total_bytes: int
    max_urls_per_request: int
    timeout: float
    max_redirects: int


@dataclass(frozen=True)
class CorsSettings:
    origins: tuple[str, ...]


@dataclass(frozen=True)
class LoggingSettings:
    dir: str
    level: str
    access_file: str
    error_file: str


@dataclass(frozen=True)
class AdminSettings:
    username: str
    password_hash: str = field(repr=False)
    secret_key: str = field(repr=False)
    secret_key_file: str
    cookie_secure: bool
    session_lifetime: float
    login_attempts: int
    login_window: int
    login_address_attempts: int
    dashboard_days: int
    usage_rows: int
    export_rows: int

    @property
    def enabled(self) -> bool:
        return bool(self.password_hash)


@dataclass(frozen=True)
class ChatLogSettings:
    enabled: bool
    file: str
    max_bytes: int
    backup_count: int
    max_answer_bytes: int


@dataclass(frozen=True)
class UsageSettings:
    flush_interval: float
    batch_size: int
    max_pending: int


@dataclass(frozen=True)
class RateLimitSettings:
    storage_url: str
    storage_timeout: float


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool
    tokens: tuple[Token, ...]
    key_names: bool
    multiproc_dir: str = ""  # where the workers' metric files are; "" when serving from one process


@dataclass(frozen=True)
class Settings:
    auth: AuthSettings
    service: ServiceSettings
    limits: LimitSettings
    images: ImageSettings
    cors: CorsSettings
    logging: LoggingSettings
    store: StoreSettings
    admin: AdminSettings
    ratelimit: RateLimitSettings
    usage: UsageSettings
    chat_logs: ChatLogSettings
    backends: tuple[OllamaServerSettings | ProviderSettings, ...] = ()
    retry: RetrySettings = RetrySettings()
    routing: RoutingSettings = RoutingSettings()
    models: ModelsSettings = field(default_factory=ModelsSettings)
    metrics: MetricsSettings = field(default_factory=lambda: MetricsSettings(enabled=True, tokens=(), key_names=False))
    source: str = "<defaults>"

    @property
    def ollama_servers(self) -> tuple[OllamaServerSettings, ...]:
        """The ``type: ollama`` backends (the default server is ``service.base_url``)."""
        return tuple(b for b in self.backends if isinstance(b, OllamaServerSettings))

    @property
    def providers(self) -> tuple[ProviderSettings, ...]:
        return tuple(b for b in self.backends if isinstance(b, ProviderSettings))


_Strict = StrictSchema


class TokenEntrySchema(_Strict):
    name = fields.String(load_default=None)
    token = fields.String(required=True, validate=validate.Length(min=1))
    rpm = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1),
                         metadata={"help": "requests per minute; absent: no limit"})
    tpm = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1),
                         metadata={"help": "prompt + completion tokens per minute; absent: no limit"})
    chat_log = fields.Boolean(load_default=None,
                              metadata={"help": "log this token's chats (or not); absent: chat_logs.enabled"})


class TokenField(fields.Field):
    """A token: a plain string (named by its index) or ``{name, token, rpm, tpm}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value:
            return {"token": value}
        if isinstance(value, dict):
            return TokenEntrySchema().load(value)
        raise ValidationError("a token is a non-empty string or {name: ..., token: ..., rpm: ..., tpm: ...}")


def _tokens(kind: str, entries: list[dict]) -> tuple[Token, ...]:
    return tuple(Token(e.get("name") or f"{kind}#{i}", e["token"], e.get("rpm"), e.get("tpm"), e.get("chat_log"))
                 for i, e in enumerate(entries))


class AuthSchema(_Strict):
    generate_tokens = fields.List(TokenField(), load_default=list,
                                  metadata={"help": "tokens that may call inference and listing endpoints"})
    manage_tokens = fields.List(TokenField(), load_default=list,
                                metadata={"help": "tokens that may also manage models and upload blobs"})
    key_cache_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0),
                                     metadata={"help": "seconds a worker trusts what it read of a managed key"})
    key_cache_size = fields.Integer(load_default=10000, strict=True, validate=validate.Range(min=1),
                                    metadata={"help": "managed keys a worker remembers"})
    unknown_key_cache_seconds = fields.Float(
        load_default=60.0, validate=validate.Range(min=0),
        metadata={"help": "seconds a worker remembers that a token is no managed key"})
    unknown_key_cache_size = fields.Integer(
        load_default=10000, strict=True, validate=validate.Range(min=1),
        metadata={"help": "tokens found to be no managed key that a worker remembers, apart from the keys"})

    @post_load
    def build(self, data, **kwargs):
        return AuthSettings(_tokens("generate", data["generate_tokens"]), _tokens("manage", data["manage_tokens"]),
                            data["key_cache_seconds"], data["key_cache_size"], data["unknown_key_cache_seconds"],
                            data["unknown_key_cache_size"])


_seconds = SECONDS


class ServiceSchema(_Strict):
    base_url = fields.Url(load_default="http://localhost:11434", require_tld=False,
                          schemes={"http", "https"}, metadata={"help": "the Ollama server"})
    connect_timeout = fields.Float(load_default=5.0, validate=_seconds,
                                   metadata={"help": "seconds to open a connection to Ollama"})
    read_timeout = fields.Float(load_default=600.0, validate=_seconds,
                                metadata={"help": "seconds to wait for an answer to start"})
    stream_idle_timeout = fields.Float(load_default=300.0, validate=_seconds,
                                       metadata={"help": "seconds of silence allowed inside a started stream"})
    health_timeout = fields.Float(load_default=2.0, validate=_seconds,
                                  metadata={"help": "seconds /health waits for Ollama"})
    pool_size = fields.Integer(load_default=1000, strict=True, validate=validate.Range(min=1),
                               metadata={"help": "pooled connections to Ollama per worker"})
    stream_ping_interval = fields.Float(load_default=10.0, validate=_seconds,
                                        metadata={"help": "seconds of upstream silence before an SSE ping"})
    health_cache_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0),
                                        metadata={"help": "seconds a worker reuses its last /health probe (0: none)"})
    trusted_proxies = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0),
                                     metadata={"help": "proxies in front whose X-Forwarded-* is trusted (nginx: 1)"})

    @post_load
    def build(self, data, **kwargs):
        data["base_url"] = data["base_url"].rstrip("/")
        return ServiceSettings(**data)


class LimitSchema(_Strict):
    max_body_bytes = fields.Integer(load_default=50 * MiB, strict=True, validate=validate.Range(min=1),
                                    metadata={"help": "largest JSON request body; larger answers 413"})
    max_blob_bytes = fields.Integer(load_default=64 * 1024 * MiB, strict=True, validate=validate.Range(min=1),
                                    metadata={"help": "largest blob upload (streamed, never held in memory)"})

    @post_load
    def build(self, data, **kwargs):
        return LimitSettings(**data)


class ImageSchema(_Strict):
    fetch_urls = fields.Boolean(load_default=True, metadata={"help": "fetch http(s) image URLs for clients"})
    allow_private = fields.Boolean(load_default=False,
                                   metadata={"help": "let image URLs reach loopback, private and link-local hosts"})
    max_bytes = fields.Integer(load_default=20 * MiB, strict=True, validate=validate.Range(min=1),
                               metadata={"help": "largest image fetched from a URL"})
    max_total_bytes = fields.Integer(load_default=50 * MiB, strict=True, validate=validate.Range(min=1),
                                     metadata={"help": "bytes fetched for the image URLs of one request, together"})
    max_urls_per_request = fields.Integer(load_default=10, strict=True, validate=validate.Range(min=1),
                                          metadata={"help": "image URLs one request may name"})
    timeout = fields.Float(load_default=10.0, validate=_seconds,
                           metadata={"help": "seconds to fetch one image, all of it: connect, redirects, body"})
    max_redirects = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=0),
                                   metadata={"help": "redirects followed when fetching an image"})

    @post_load
    def build(self, data, **kwargs):
        return ImageSettings(**data)


class CorsSchema(_Strict):
    origins = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list,
                          metadata={"help": 'origins browsers may call from; ["*"] for any, [] for none'})

    @post_load
    def build(self, data, **kwargs):
        return CorsSettings(tuple(data["origins"]))


class LoggingSchema(_Strict):
    dir = fields.String(load_default="logs", validate=validate.Length(min=1),
                        metadata={"help": "log directory, relative to the project root unless absolute"})
    level = fields.String(load_default="INFO",
                          validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
                          metadata={"help": "level of the error log"})
    access_file = fields.String(load_default="access.log", metadata={"help": "one JSON line per request"})
    error_file = fields.String(load_default="error.log", metadata={"help": "warnings, errors, upstream failures"})

    @post_load
    def build(self, data, **kwargs):
        if not os.path.isabs(data["dir"]):
            data["dir"] = str(PROJECT_ROOT / data["dir"])
        return LoggingSettings(**data)


class StoreSchema(_Strict):
    url = fields.String(load_default="sqlite:///data/ollama-proxy.db", validate=validate.Length(min=1),
                        metadata={"help": "SQLAlchemy URL; a relative SQLite path is under the project root"})
    busy_timeout = fields.Float(load_default=5.0, validate=_seconds,
                                metadata={"help": "seconds to wait for a database lock held by another process"})
    cache_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0),
                                 metadata={"help": "seconds a worker keeps the aliases and overrides it read"})

    @post_load
    def build(self, data, **kwargs):
        return StoreSettings(_rooted_sqlite(data["url"]), data["busy_timeout"], data["cache_seconds"])


def _rooted_sqlite(url: str) -> str:
    """Anchor a relative SQLite path at the project root, as the log directory is."""
    prefix = "sqlite:///"
    path = url[len(prefix):] if url.startswith(prefix) else None
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + str(PROJECT_ROOT / path)
# Hash formats werkzeug.security.check_password_hash reads ("method:params$salt$hash").
_PASSWORD_HASH = validate.Regexp(r"^((scrypt|pbkdf2)(:[^$]*)?\$[^$]+\$[0-9a-f]+)?$",
                                 error="not a password hash: make one with `ollama-proxy admin-password`")


class AdminSchema(_Strict):
    username = fields.String(load_default="admin", validate=validate.Length(min=1, max=100),
                             metadata={"help": "the admin page's user name"})
    password_hash = fields.String(load_default="", validate=_PASSWORD_HASH,
                                  metadata={"help": "hash from `ollama-proxy admin-password`; empty: the page is off"})
    secret_key = fields.String(load_default="",
                               metadata={"help": "signs session cookies; empty: kept in secret_key_file"})
    secret_key_file = fields.String(load_default="data/admin-secret-key", validate=validate.Length(min=1),
                                    metadata={"help": "file holding a generated secret key (relative: project root)"})
    cookie_secure = fields.Boolean(load_default=True,
                                   metadata={"help": "send the session cookie over HTTPS only (false: plain HTTP)"})
    session_lifetime = fields.Float(load_default=8 * 3600.0, validate=_seconds,
                                    metadata={"help": "seconds a login lasts"})
    login_attempts = fields.Integer(load_default=5, strict=True, validate=validate.Range(min=1),
                                    metadata={"help": "failed logins allowed per client address and user name"})
    login_window = fields.Integer(load_default=300, strict=True, validate=validate.Range(min=1),
                                  metadata={"help": "seconds over which failed logins are counted"})
    login_address_attempts = fields.Integer(
        load_default=20, strict=True, validate=validate.Range(min=1),
        metadata={"help": "login attempts allowed per client address within login_window, whatever the user name"})
    dashboard_days = fields.Integer(load_default=30, strict=True, validate=validate.Range(min=1, max=366),
                                    metadata={"help": "days the dashboard's charts cover"})
    usage_rows = fields.Integer(load_default=500, strict=True, validate=validate.Range(min=1),
                                metadata={"help": "usage rows shown on one page"})
    export_rows = fields.Integer(load_default=100_000, strict=True, validate=validate.Range(min=1),
                                 metadata={"help": "most usage rows in one CSV export"})

    @post_load
    def build(self, data, **kwargs):
        if not os.path.isabs(data["secret_key_file"]):
            data["secret_key_file"] = str(PROJECT_ROOT / data["secret_key_file"])
        return AdminSettings(**data)


class ChatLogSchema(_Strict):
    enabled = fields.Boolean(load_default=False, metadata={"help": "log every token's chats (a token may opt out)"})
    file = fields.String(load_default="chat.jsonl", validate=validate.Length(min=1),
                         metadata={"help": "file in the log directory; not *.log, which logrotate rotates"})
    max_bytes = fields.Integer(load_default=100 * MiB, strict=True, validate=validate.Range(min=1),
                               metadata={"help": "size at which the file is rotated"})
    backup_count = fields.Integer(load_default=10, strict=True, validate=validate.Range(min=1),
                                  metadata={"help": "rotated files kept"})
    max_answer_bytes = fields.Integer(load_default=4 * MiB, strict=True, validate=validate.Range(min=1),
                                      metadata={"help": "answer bytes read for one line; more is marked truncated"})

    @post_load
    def build(self, data, **kwargs):
        return ChatLogSettings(**data)


class UsageSchema(_Strict):
    flush_interval = fields.Float(load_default=1.0, validate=_seconds,
                                  metadata={"help": "seconds between two batched writes of usage rows"})
    batch_size = fields.Integer(load_default=500, strict=True, validate=validate.Range(min=1),
                                metadata={"help": "rows per write; this many waiting are written at once"})
    max_pending = fields.Integer(load_default=100000, strict=True, validate=validate.Range(min=1),
                                 metadata={"help": "rows a worker keeps while the store fails; then the oldest go"})

    @post_load
    def build(self, data, **kwargs):
        return UsageSettings(**data)


class RateLimitSchema(_Strict):
    storage_url = fields.String(load_default="sqlite:///data/ratelimit.db", validate=validate.Length(min=1),
                                metadata={"help": "where rate-limit counters live: sqlite:///FILE (the workers of "
                                                  "one instance), redis://HOST:PORT/DB (several instances)"})
    storage_timeout = fields.Float(load_default=5.0, validate=_seconds,
                                   metadata={"help": "seconds to wait for the counter storage (lock or network)"})

    @post_load
    def build(self, data, **kwargs):
        return RateLimitSettings(_rooted_sqlite(data["storage_url"]), data["storage_timeout"])


class MetricsSchema(_Strict):
    enabled = fields.Boolean(load_default=True, metadata={"help": "serve GET /metrics (false: it answers 404)"})
    tokens = fields.List(TokenField(), load_default=list,
                         metadata={"help": "tokens that may read /metrics and nothing else (manage tokens may too)"})
    key_names = fields.Boolean(load_default=False,
                               metadata={"help": "label token counts with the key's name (default: no names)"})

    @post_load
    def build(self, data, **kwargs):
        return MetricsSettings(data["enabled"], _tokens("metrics", data["tokens"]), data["key_names"])


def _section(schema: type[Schema]) -> fields.Nested:
    return fields.Nested(schema, load_default=lambda: schema().load({}))


class SettingsSchema(_Strict):
    auth = _section(AuthSchema)
    service = _section(ServiceSchema)
    limits = _section(LimitSchema)
    images = _section(ImageSchema)
    cors = _section(CorsSchema)
    logging = _section(LoggingSchema)
    store = _section(StoreSchema)
    backends = backends_field()
    retry = _section(RetrySchema)
    routing = _section(RoutingSchema)
    admin = _section(AdminSchema)
    models = _section(ModelsSchema)
    ratelimit = _section(RateLimitSchema)
    metrics = _section(MetricsSchema)
    usage = _section(UsageSchema)
    chat_logs = _section(ChatLogSchema)

    @post_load
    def build(self, data, **kwargs):
        service = data["service"]
        data["backends"] = tuple(_with_service_timeouts(b, service) for b in data["backends"])
        return Settings(**data)


def _with_service_timeouts(backend, service: ServiceSettings):
    if not isinstance(backend, ProviderSettings):
        return backend
    return replace(backend, **{key: getattr(service, key) for key in
                               ("connect_timeout", "read_timeout", "stream_idle_timeout")
                               if getattr(backend, key) is None})


def _with_api_keys(backends: tuple, environ: dict[str, str]) -> tuple:
    """Fill each provider's API key from the variable it names; an empty one stops the start."""
    out = []
    for i, backend in enumerate(backends):
        if isinstance(backend, ProviderSettings) and backend.api_key_env:
            key = environ.get(backend.api_key_env, "").strip()
            if not key:
                raise ConfigError(f"backends.{i}.api_key_env: backend '{backend.name}' needs its API key "
                                  f"in ${backend.api_key_env}, which is unset or empty")
            backend = replace(backend, api_key=key)
        out.append(backend)
    return tuple(out)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and messages and isinstance(messages[0], str):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def _blamed(problem: str, source: str, environ: dict[str, str]) -> str:
    """Put the name of where a bad value came from before ``section.key: message``: a variable, or the file."""
    for name, (section, key) in ENV_OVERRIDES.items():
        if name in environ and problem.startswith((f"{section}.{key}:", f"{section}.{key}.")):
            return f"${name} ({problem})"
    return f"{source}: {problem}"


def apply_env(raw: dict, environ: dict[str, str]) -> dict:
    """Return ``raw`` with the ``OLLAMA_PROXY_*`` overrides found in ``environ``."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for name, (section, key) in ENV_OVERRIDES.items():
        if name in environ:
            value: Any = environ[name]
            if name in _LIST_OVERRIDES:
                value = [item.strip() for item in value.split(",") if item.strip()]
            elif name in _INT_OVERRIDES and value.strip().isdigit():
                value = int(value)  # anything else is left for the schema to name as not an integer
            target = merged.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{section}: must be a mapping")
            target[key] = value
    return merged


def parse_settings(raw: Any, source: str = "<memory>", environ: dict[str, str] | None = None) -> Settings:
    """Check a parsed YAML document (plus environment overrides) and build Settings."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    environ = os.environ if environ is None else environ
    raw = apply_env(raw, environ)
    try:
        settings = SettingsSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(_blamed(line, source, environ) for line in _flatten(exc.messages))) from None
    try:
        backends = _with_api_keys(settings.backends, environ)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    metrics = replace(settings.metrics, multiproc_dir=environ.get(MULTIPROC_ENV, ""))
    return replace(settings, backends=backends, source=source, metrics=metrics)


def config_path(environ: dict[str, str] | None = None) -> Path:
    """Return the configuration file to use: $OLLAMA_PROXY_CONFIG or the default."""
    environ = os.environ if environ is None else environ
    return Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else DEFAULT_CONFIG


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Say what is wrong in a YAML text and where, without PyYAML's ``in "<unicode string>"``."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        problem = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        return f"{context} started at line {context_mark.line + 1}: {problem}"
    return problem


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read, override and check the configuration file at ``path``."""
    path = Path(path) if path else config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_settings(raw, str(path), environ)
