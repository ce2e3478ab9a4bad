"""Write the access and error logs under the log directory, secrets redacted.

The access line is written when a request's response closes: the first of the
ledger's close listeners, so a stream is logged once, with the bytes it really
sent, its duration, and whether the client left before the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from logging.handlers import WatchedFileHandler

from flask import Flask

from ollama_proxy import ledger
from ollama_proxy.backends.url_secrets import without_password
from ollama_proxy.config import Settings
from ollama_proxy.ledger import CloseListener, RequestRecord


class RedactingFormatter(logging.Formatter):
    """Format a record, then blank every configured secret and URL password in it."""

    def __init__(self, fmt: str, secrets: list[str]):
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return without_password(text)


class RepeatLimit(logging.Filter):
    """Let at most ``burst`` warnings of one kind (logger, level, message template) through per ``window`` seconds.

    A fault that repeats (a lost connection retried, a bad message sent again and again) is
    said a few times, then once a window with how many were left out, instead of flooding the
    log. Informational lines (a request's own events: its client left, tools it left out) are
    all written. One filter serves every handler of a logger: a record is judged once.
    """

    def __init__(self, burst: int = 5, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._seen: dict[tuple, list] = {}  # kind -> [window start, let through, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        judged = getattr(record, "_repeat_limit", None)
        if judged is None:
            judged = record._repeat_limit = self._judge(record)
        return judged

    def _judge(self, record: logging.LogRecord) -> bool:
        now, kind = self._clock(), (record.name, record.levelno, str(record.msg))
        seen = self._seen.get(kind)
        if seen is None or now - seen[0] >= self.window:
            if len(self._seen) > 10_000:
                self._seen.clear()
            left_out = seen[2] if seen is not None else 0
            self._seen[kind] = [now, 1, 0]
            if left_out:
                record.msg = f"{record.msg} ({left_out} more like this in the last {self.window:g}s left out)"
            return True
        if seen[1] < self.burst:
            seen[1] += 1
            return True
        seen[2] += 1
        return False


def _file_handler(path: str, formatter: logging.Formatter) -> logging.Handler:
    # WatchedFileHandler reopens the file after logrotate moves it; every worker appends.
    handler = WatchedFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(formatter)
    handler._ollama_proxy = True  # marks handlers this module owns, to replace them on re-init
    return handler


def _replace_handlers(logger: logging.Logger, *handlers: logging.Handler) -> None:
    for old in [h for h in logger.handlers if getattr(h, "_ollama_proxy", False)]:
        logger.removeHandler(old)
        old.close()
    for handler in handlers:
        logger.addHandler(handler)


def secrets_of(settings: Settings) -> list[str]:
    """Return every secret the configuration holds: tokens and provider API keys."""
    tokens = settings.auth.generate_tokens + settings.auth.manage_tokens + settings.metrics.tokens
    secrets = [t.secret for t in tokens]
    return secrets + [key for key in (getattr(b, "api_key", None) for b in settings.backends) if key]


class AccessLogFile:
    """Append access lines to a file, one write each; reopen it once logrotate has moved it.

    Not a logging handler: the logging module's path (caller lookup, record,
    lock, formatter, handler) cost a tenth of a proxied request's CPU, and an
    access line needs none of it.
    """

    def __init__(self, path: str, redact: Callable[[str], str]):
        self.path = path
        self._redact = redact
        self._fd: int | None = None  # opened on first use, in the worker
        self._file_id: tuple[int, int] | None = None

    def info(self, line: str) -> None:
        """Write one line (named like a logger's method: tests pass a logger instead)."""
        self._reopen_if_moved()
        os.write(self._fd, (self._redact(line) + "\n").encode("utf-8", "backslashreplace"))

    def _reopen_if_moved(self) -> None:
        try:
            status = os.stat(self.path)
            if self._fd is not None and (status.st_dev, status.st_ino) == self._file_id:
                return
        except FileNotFoundError:
            pass
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        status = os.fstat(self._fd)
        self._file_id = (status.st_dev, status.st_ino)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def configure(settings: Settings) -> AccessLogFile:
    """Point the package's loggers at the log directory; return the access logger."""
    conf = settings.logging
    os.makedirs(conf.dir, exist_ok=True)
    secrets = secrets_of(settings)
    error_format = RedactingFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s", secrets)

    package = logging.getLogger("ollama_proxy")
    package.setLevel(conf.level)
    console = logging.StreamHandler()
    console.setFormatter(error_format)
    console._ollama_proxy = True
    error_file = _file_handler(os.path.join(conf.dir, conf.error_file), error_format)
    repeats = RepeatLimit()
    for handler in (error_file, console):
        handler.addFilter(repeats)
    _replace_handlers(package, error_file, console)
    package.propagate = False

    return AccessLogFile(os.path.join(conf.dir, conf.access_file), RedactingFormatter("%(message)s", secrets).redact)


def access_line(record: RequestRecord, now: float) -> str:
    """Return the access log's JSON line for a finished request."""
    entry = {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": record.request_id,
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "bytes": record.bytes,
        "duration_ms": round((now - record.started) * 1000, 2),
        "ttfb_ms": None if record.first_byte is None else round((record.first_byte - record.started) * 1000, 2),
        "ttft_ms": record.ttft_ms,
        "model": record.model,
        "backend": record.backend,
        "upstream_model": record.upstream_model,
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,  # of those, read from Ollama's cache, as it said; null: not said
        # the scheduler's estimate of the same, never Ollama's word; null: none made
        "cached_tokens_estimated": record.cached_tokens_estimated,
        "completion_tokens": record.completion_tokens,
        "token": record.principal,
        "client": record.client,
        "aborted": record.aborted,
    }
    if record.end_user is not None:  # named by a trusted front end: whom the key called for
        entry["end_user"] = record.end_user
    return json.dumps(entry)  # ASCII: a lone surrogate from a client cannot break the line


def access_logger(access: AccessLogFile | logging.Logger) -> CloseListener:
    """Return the close listener that writes a finished request's access line."""
    def write_line(record: RequestRecord) -> None:
        access.info(access_line(record, time.perf_counter()))
    return write_line


def init_app(app: Flask) -> None:
    """Configure the logs; write each request's access line first among the ledger's close listeners."""
    ledger.add_close_listener(app, access_logger(configure(app.config["SETTINGS"])))
