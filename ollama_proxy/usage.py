"""Record what every request used in the store, in batches written off the request path.

The access log hands each finished request's record to ``UsageRecorder.record``
(a close listener), which turns it into a row and queues it: the request never
waits on the database. One background thread per worker (a greenlet under
gevent) writes the queue to the store's ``usage`` table every
``usage.flush_interval`` seconds, or at once when ``usage.batch_size`` rows
wait. When the worker exits (SIGTERM, SIGQUIT, a reload, max_requests), the
rows still queued are written before it goes. If the store fails, the rows stay
queued for the next try, up to ``usage.max_pending``; past that the oldest are
dropped, and the error log says how many.

Requests made without a token (``/health``, refused ones) are not recorded:
usage is per key.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from ollama_proxy import logs
from ollama_proxy.config import UsageSettings
from ollama_proxy.logs import AccessRecord
from ollama_proxy.store import StoreError, current_store

log = logging.getLogger(__name__)


def usage_row(record: AccessRecord, now: float, wall: datetime) -> dict:
    """Turn a finished request's access record into a usage row (``now``: perf_counter at close)."""
    duration = now - record.started
    return {
        "ts": wall - timedelta(seconds=duration),  # when the request came in
        "request_id": record.request_id,
        "key_name": record.principal,
        "surface": record.surface,
        "model": record.model,
        "backend": record.backend,
        "upstream_model": record.upstream_model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "duration_ms": round(duration * 1000, 2),
        "ttft_ms": record.ttft_ms,
        "status": record.status,
        "aborted": record.aborted,
    }


class UsageRecorder:
    """Queue usage rows and write them in batches from a background thread."""

    def __init__(self, write: Callable[[list[dict]], None], settings: UsageSettings):
        self._write = write
        self._settings = settings
        self._pending: deque[dict] = deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._started_in: int | None = None  # the pid whose thread runs: a fork needs its own
        self.dropped = 0

    def record(self, record: AccessRecord) -> None:
        """Queue the usage of one finished request (cheap: called as its response closes)."""
        if record.principal is None:
            return
        self._pending.append(usage_row(record, time.perf_counter(), datetime.now(timezone.utc)))
        while len(self._pending) > self._settings.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._start()
        if len(self._pending) >= self._settings.batch_size:
            self._wake.set()

    def _start(self) -> None:
        if self._started_in == os.getpid():
            return
        self._started_in = os.getpid()
        threading.Thread(target=self._run, name="usage-writer", daemon=True).start()
        atexit.register(self.flush)  # the worker's last act: nothing queued is lost

    def _run(self) -> None:
        while True:
            self._wake.wait(self._settings.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write every queued row now, in batches; return how many were written."""
        written = 0
        with self._flushing:
            if self.dropped:
                log.error("usage: %d rows dropped, the store failed for too long (usage.max_pending)", self.dropped)
                self.dropped = 0
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self._settings.batch_size, len(self._pending)))]
                try:
                    self._write(batch)
                except (StoreError, SQLAlchemyError, OSError) as exc:
                    self._pending.extendleft(reversed(batch))  # kept, in order, for the next try
                    log.warning("usage: %d rows not written yet, the store failed: %s", len(self._pending), exc)
                    break
                written += len(batch)
        return written


def init_app(app: Flask) -> None:
    """Record the usage of every request ``app`` answers."""
    recorder = UsageRecorder(lambda rows: current_store(app).add_usage(rows), app.config["SETTINGS"].usage)
    app.extensions["ollama_proxy.usage"] = recorder
    logs.add_close_listener(app, recorder.record)
