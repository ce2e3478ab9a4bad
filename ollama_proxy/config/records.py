"""Declare what the proxy writes down and where: ``logging:``, ``store:``, ``usage:``, ``budgets:``, ``chat_logs:``,
``metrics:``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from marshmallow import ValidationError, validate

from ollama_proxy.config.checks import AT_LEAST_0, AT_LEAST_1, DATABASE_URL, NON_EMPTY, SECONDS, MiB
from ollama_proxy.config.declare import setting
from ollama_proxy.config.paths import rooted_sqlite, under_project_root
from ollama_proxy.config.tokens import Token, TokenList


@dataclass(frozen=True)
class LoggingSettings:
    dir: str = setting(
        "logs", validate=NON_EMPTY, then=under_project_root, env="OLLAMA_PROXY_LOG_DIR",
        help="log directory (relative to the project root unless absolute); created at start")
    level: str = setting(
        "INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]), env="OLLAMA_PROXY_LOG_LEVEL",
        help="level of the error log: `DEBUG`, `INFO`, `WARNING` or `ERROR`")
    access_file: str = setting(
        "access.log", help="access log file name: one JSON line per request, written when the response closes")
    error_file: str = setting(
        "error.log", help="error log file name: warnings and errors, upstream failures included")


@dataclass(frozen=True)
class StoreSettings:
    # A PostgreSQL URL carries a password: it may come from the environment.
    url: str = setting(
        "sqlite:///data/ollama-proxy.db", validate=DATABASE_URL, then=rooted_sqlite, env="OLLAMA_PROXY_STORE_URL",
        help="the store's database (SQLAlchemy URL; a relative SQLite path is under the project root; "
             "`postgresql://user:password@host/db` for several instances)")
    busy_timeout: float = setting(
        5.0, validate=SECONDS, help="seconds to wait for a database lock held by another process")
    network_timeout: float = setting(
        10.0, validate=SECONDS,
        help="seconds a PostgreSQL connection may take to open, or go unanswered on a silent network, before it is "
             "given up (the request gets a 503)")
    cache_seconds: float = setting(
        5.0, validate=AT_LEAST_0, help="seconds a worker keeps the aliases and overrides it read from the store")


@dataclass(frozen=True)
class UsageSettings:
    flush_interval: float = setting(1.0, validate=SECONDS, help="seconds between two batched writes of usage rows")
    batch_size: int = setting(500, validate=AT_LEAST_1, help="rows per write; as many waiting are written at once")
    max_pending: int = setting(
        100000, validate=AT_LEAST_1, help="rows a worker keeps while the store fails; then the oldest are dropped")


@dataclass(frozen=True)
class ChatLogSettings:
    enabled: bool = setting(False, help="log every token's chats (a token's own `chat_log` wins)")
    file: str = setting(
        "chat.jsonl", validate=NON_EMPTY,
        help="the chat log, in `logging.dir`; its name must not end in `.log`, or deploy/logrotate would "
             "rotate it too")
    max_bytes: int = setting(100 * MiB, validate=AT_LEAST_1, help="size at which the chat log is rotated")
    backup_count: int = setting(
        10, validate=AT_LEAST_1, help="rotated chat logs kept (`chat.jsonl.1` ... `chat.jsonl.10`)")
    max_answer_bytes: int = setting(
        4 * MiB, validate=AT_LEAST_1,
        help="bytes of answer text kept for one line (UTF-8); more is marked `answer_truncated`")
    max_request_bytes: int = setting(
        4 * MiB, validate=AT_LEAST_1,
        help="bytes of a request kept for one line: a longer one is written as the text of its first and last halves "
             "of this, base64 runs elided, marked `request_truncated` with its whole size (`request_bytes`); a 45 MB "
             "line took a worker 0.2 s to write, beside every stream it served")


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = setting(True, help="serve `/metrics` and count (`false`: 404, nothing counted)")
    tokens: tuple[Token, ...] = setting(
        (), field=partial(TokenList, "metrics"), env="OLLAMA_PROXY_METRICS_TOKENS",
        help="a scraper's tokens: they may read `/metrics` and nothing else (manage tokens may too); "
             "same forms as `auth` tokens")
    key_names: bool = setting(False, help="label token counts with the key's name (who used how much)")
    # Where the workers' metric files are, from prometheus_client's own variable (deploy/gunicorn.conf.py
    # sets it before the workers start); "" when serving from one process. No key of the file.
    multiproc_dir: str = ""


def _time_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"not a time zone the system knows: {name!r} (e.g. UTC, Europe/Berlin)") from None
    return True


@dataclass(frozen=True)
class BudgetSettings:
    timezone: str = setting(
        "UTC", validate=_time_zone,
        help="the time zone whose calendar days, weeks (from Monday) and months a budget's period follows")
    cache_seconds: float = setting(
        2.0, validate=AT_LEAST_0,
        help="seconds a worker keeps the budgets it read from the store (what was spent is read at each request)")
    lease_seconds: float = setting(
        1.0, validate=AT_LEAST_0,
        help="seconds a worker admits a budgeted key's requests against a share of its budgets it leased, without "
             "the store; their charges land as the lease ends (a worker killed loses them). 0: every request "
             "reads its spend and adds its charge")
