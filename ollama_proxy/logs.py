"""Write the access and error logs under the log directory, secrets redacted.

The access line is written by a WSGI middleware when the response *closes*, so
a stream is logged once, with the bytes it really sent, its duration, and
whether the client left before the end. The middleware also gives every
request an id (kept from ``X-Request-Id`` when a front proxy set a sane one)
and puts it on every response, error pages included.

Other parts of the proxy (usage records, metrics) see every finished request
through ``add_close_listener``: each listener gets the ``AccessRecord`` once
the access line is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from logging.handlers import WatchedFileHandler

from flask import Flask, request

from ollama_proxy.config import Settings

RECORD_KEY = "ollama_proxy.access"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
LISTENERS_KEY = "ollama_proxy.close_listeners"
log = logging.getLogger(__name__)

# Path prefix -> the protocol a client speaks there; the first match wins.
_SURFACES = (
    ("/api/", "native"), ("/v1/messages", "anthropic"), ("/anthropic/", "anthropic"),
    ("/v1/responses", "responses"), ("/v1/", "openai"), ("/admin", "admin"),
)


def surface_of(path: str) -> str:
    """Return the surface a path belongs to: native, openai, anthropic, responses, admin or other."""
    if path == "/":
        return "native"
    for prefix, surface in _SURFACES:
        if path.startswith(prefix):
            return surface
    return "other"


@dataclass
class AccessRecord:
    """What one request did; views fill in the model, principal, route and tokens."""

    request_id: str
    method: str
    path: str
    client: str
    started: float
    status: int = 0
    bytes: int = 0
    first_byte: float | None = None
    completed: bool = False
    client_left: bool = False  # seen hanging up while the answer was still coming
    model: str | None = None
    principal: str | None = None
    upstream: float = 0.0  # seconds spent waiting on the upstream before the answer went out
    surface: str = "other"
    backend: str | None = None  # the backend's name, once routed
    upstream_model: str | None = None  # the model as the backend was asked for it
    prompt_tokens: int | None = None
    counted_tokens: int | None = None  # generated tokens as reported by finished answers
    provisional_tokens: int = 0  # generated chunks of answers not finished (yet, or ever)
    first_token: float | None = None  # perf_counter time of the first generated chunk
    endpoint: str | None = None  # the URL rule that served the request (/v1/models/<path:model_id>)

    @property
    def aborted(self) -> bool:
        """Whether the client left before the end of the answer."""
        return self.client_left or not self.completed

    @property
    def completion_tokens(self) -> int | None:
        if self.counted_tokens is None and not self.provisional_tokens:
            return None
        return (self.counted_tokens or 0) + self.provisional_tokens

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else round((self.first_token - self.started) * 1000, 2)

    def server_timing(self, now: float) -> str:
        total = now - self.started
        return f"proxy;dur={max(0.0, total - self.upstream) * 1000:.2f}, upstream;dur={self.upstream * 1000:.2f}"

    def line(self, now: float) -> str:
        entry = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes": self.bytes,
            "duration_ms": round((now - self.started) * 1000, 2),
            "ttfb_ms": None if self.first_byte is None else round((self.first_byte - self.started) * 1000, 2),
            "ttft_ms": self.ttft_ms,
            "model": self.model,
            "backend": self.backend,
            "upstream_model": self.upstream_model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "token": self.principal,
            "client": self.client,
            "aborted": self.aborted,
        }
        return json.dumps(entry)  # ASCII: a lone surrogate from a client cannot break the line


class _LoggedBody:
    """Count what a response body sends, and log the request when it closes."""

    def __init__(self, body, record: AccessRecord, logger: AccessLogFile | logging.Logger, listeners: list):
        self._body = body
        self._record = record
        self._logger = logger
        self._listeners = listeners

    def __iter__(self):
        record = self._record
        for chunk in self._body:
            if record.first_byte is None:
                record.first_byte = time.perf_counter()
            record.bytes += len(chunk)
            yield chunk
        record.completed = True

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()  # closes the view's generator: the upstream response goes with it
        finally:
            self._logger.info(self._record.line(time.perf_counter()))
            for listener in self._listeners:
                try:
                    listener(self._record)
                except Exception:  # a listener's fault must not break the response's close
                    log.exception("close listener %r failed", listener)


class AccessLogMiddleware:
    """Wrap a WSGI app: request id in and out, one access line per response."""

    def __init__(self, app, logger: AccessLogFile | logging.Logger, listeners: list | None = None):
        self.app = app
        self.logger = logger
        self.listeners = [] if listeners is None else listeners

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        record = AccessRecord(
            request_id=incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex,
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", ""),  # no query string: it is the client's to fill with anything
            client=environ.get("REMOTE_ADDR", ""),
            started=time.perf_counter(),
            surface=surface_of(environ.get("PATH_INFO", "")),
        )
        environ[RECORD_KEY] = record

        def recording_start_response(status, headers, exc_info=None):
            record.status = int(status.split(" ", 1)[0])
            headers = [(k, v) for k, v in headers if k.lower() not in ("x-request-id", "server-timing")]
            headers.append(("X-Request-Id", record.request_id))
            headers.append(("Server-Timing", record.server_timing(time.perf_counter())))
            return start_response(status, headers, exc_info)

        return _LoggedBody(self.app(environ, recording_start_response), record, self.logger, self.listeners)


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
        return _URL_USERINFO.sub(r"\1***@", text)


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
    _replace_handlers(package, _file_handler(os.path.join(conf.dir, conf.error_file), error_format), console)
    package.propagate = False

    return AccessLogFile(os.path.join(conf.dir, conf.access_file), RedactingFormatter("%(message)s", secrets).redact)


def access_record(environ) -> AccessRecord | None:
    """Return the access record of the request behind ``environ``."""
    return environ.get(RECORD_KEY)


def note_model(model: str | None) -> None:
    """Put the model a request asked for on its access line."""
    record = access_record(request.environ)
    if record is not None:
        record.model = model


def note_route(backend: str, upstream_model: str | None) -> None:
    """Put the backend a request was routed to, and the model it was asked for, on its record."""
    record = access_record(request.environ)
    if record is not None:
        record.backend, record.upstream_model = backend, upstream_model


def current_record() -> AccessRecord | None:
    """Return the access record of the request being handled (for stream taps to keep)."""
    return access_record(request.environ)


def note_upstream(seconds: float) -> None:
    """Count ``seconds`` of upstream time into the request's Server-Timing (parallel calls: the longest)."""
    record = access_record(request.environ)
    if record is not None:
        record.upstream = max(record.upstream, seconds)


def add_close_listener(app: Flask, listener: Callable[[AccessRecord], None]) -> None:
    """Call ``listener(record)`` once for every request, after its access line is written.

    It runs in the worker, in the greenlet closing the response: keep it cheap
    (queue the record; do no I/O inline).
    """
    app.extensions[LISTENERS_KEY].append(listener)


def init_app(app: Flask) -> None:
    access = configure(app.config["SETTINGS"])
    app.extensions[LISTENERS_KEY] = []
    app.wsgi_app = AccessLogMiddleware(app.wsgi_app, access, app.extensions[LISTENERS_KEY])
