"""Record what every request used in the store, in batches written off the request path.

The access log hands each finished request's record to ``UsageRecorder.record``
(a close listener), which turns it into a row and queues it: the request never
waits on the database. One background thread per worker (a greenlet under
gevent) writes the queue to the store's ``usage`` table every
``usage.flush_interval`` seconds, or at once when ``usage.batch_size`` rows
wait. When the worker exits (SIGTERM, SIGQUIT, a reload, max_requests), the
rows still queued are written before it goes. If the store fails, the rows stay
queued for the next try, up to ``usage.max_pending``; past that the oldest are
dropped, and the error log says how many. A row the store refuses (a value that
does not fit its column) is its own fault, not the store's: the batch is written
row by row, the refused row is dropped, logged and counted
(``ollama_proxy_usage_rows_rejected_total``), and the rest go in. Rows are made
to fit their columns as they are built, so this should never happen.

Requests made without a token (``/health``, refused ones) are not recorded:
usage is per key, and per end user where a trusted front end names one.
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

from ollama_proxy import ledger
from ollama_proxy.config import UsageSettings
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.store import DatabaseError, StoreError, ValueRefused, current_store
from ollama_proxy.store.errors import short_reason
from ollama_proxy.store.usage import fit_usage_row

log = logging.getLogger(__name__)
# What writing a batch may raise. UnicodeError and OverflowError come from the database
# drivers unwrapped, for a value they cannot send (a lone surrogate, a huge number).
_WRITE_ERRORS = (StoreError, DatabaseError, OSError, UnicodeError, OverflowError)


def usage_row(record: RequestRecord, now: float, wall: datetime) -> dict:
    """Turn a finished request's access record into a usage row (``now``: perf_counter at close)."""
    duration = now - record.started
    named = {"end_user": record.end_user} if record.end_user is not None else {}  # a trusted front end's user
    return fit_usage_row({
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
        "cached_tokens": record.cached_tokens,  # Ollama's own figure; null: it did not say (none up to 0.33 does)
        **named,
        "team": record.team,
        "gpu_seconds": record.gpu_seconds,
        "queue_ms": round(record.queue_seconds(now) * 1000, 2),
        "measured": record.measured or bool(record.provisional_tokens),  # the proxy's figures, not Ollama's
        "key_id": record.key_id,  # what tells two keys of one name apart (one deleted, then made again)
        "team_id": record.team_id,
        "cached_tokens_estimated": record.cached_tokens_estimated,  # the scheduler's estimate, not Ollama's word
    })


def refused_row(error: BaseException) -> bool:
    """Tell whether ``error`` is the fault of the rows written, not of the store: retrying cannot help."""
    return isinstance(error, (StoreError, ValueRefused, UnicodeError, OverflowError))


def reason(error: BaseException) -> str:
    """Say why a write failed in one short line, without the statement and its parameters."""
    return error.reason if isinstance(error, DatabaseError) else short_reason(error)


class UsageRecorder:
    """Queue usage rows and write them in batches from a background thread."""

    def __init__(self, write: Callable[[list[dict]], None], settings: UsageSettings,
                 on_rejected: Callable[[], None] = lambda: None):
        self._write = write
        self._settings = settings
        self._on_rejected = on_rejected
        self._pending: deque[dict] = deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._started_in: int | None = None  # the pid whose thread runs: a fork needs its own
        self.dropped = 0
        self.rejected = 0  # rows the store refused, since the worker started

    def record(self, record: RequestRecord) -> None:
        """Queue the usage of one finished request (cheap: called as its response closes)."""
        if record.principal is not None:
            self.queue(usage_row(record, time.perf_counter(), datetime.now(timezone.utc)))

    def queue(self, row: dict) -> None:
        """Queue one usage row (``usage_row`` builds them) for the next batch."""
        self._pending.append(row)
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
                count, store_failed = self._write_batch(batch)
                written += count
                if store_failed:
                    break
        return written

    def _write_batch(self, batch: list[dict]) -> tuple[int, bool]:
        """Write ``batch``, row by row if the store refuses one; return the rows written and whether it failed."""
        try:
            self._write(batch)
            return len(batch), False
        except _WRITE_ERRORS as exc:
            if not refused_row(exc):
                self._keep(batch, exc)
                return 0, True
        written = 0
        for n, row in enumerate(batch):
            try:
                self._write([row])
            except _WRITE_ERRORS as exc:
                if not refused_row(exc):
                    self._keep(batch[n:], exc)
                    return written, True
                self._reject(row, exc)
            else:
                written += 1
        return written, False

    def _keep(self, rows: list[dict], error: BaseException) -> None:
        self._pending.extendleft(reversed(rows))  # kept, in order, for the next try
        log.warning("usage: %d rows not written yet, the store failed: %s", len(self._pending), reason(error))

    def _reject(self, row: dict, error: BaseException) -> None:
        self.rejected += 1
        self._on_rejected()
        log.error("usage: the store refused the row of request %s (key %r), dropped (%d so far): %s",
                  row.get("request_id"), row.get("key_name"), self.rejected, reason(error))


def init_app(app: Flask) -> None:
    """Record the usage of every request ``app`` answers."""
    recorder = UsageRecorder(lambda rows: current_store(app).add_usage(rows), app.config["SETTINGS"].usage,
                             on_rejected=lambda: _count_rejected(app))
    app.extensions["ollama_proxy.observability.usage"] = recorder
    ledger.add_close_listener(app, recorder.record)


def _count_rejected(app: Flask) -> None:
    proxy_metrics = app.extensions.get("ollama_proxy.observability.metrics")  # there when metrics.enabled
    if proxy_metrics is not None:
        proxy_metrics.usage_rows_rejected.inc()
