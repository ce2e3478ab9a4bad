"""The fake Ollama's request threads run through the scheduler model, on the real clock.

Each generate, chat or embed request's thread waits on one condition variable until the model
admits it (its runner loaded and a slot held), so the response's headers, which go out with the
first chunk, leave only then, as Ollama's do. A thread whose client hangs up while it waits cancels
its request, which is then dropped and never started.

With a prompt cache, a request that got its slot takes a cache slot for its prompt (``Lease.load_prompt``)
and notes there what its runner processes (``Lease.processed``) until its response closes.
"""

from __future__ import annotations

import math
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Response

from tests.fakes.ollama_reading import PromptReader
from tests.fakes.ollama_runner import (
    FOREVER,
    PENDING,
    REJECTED,
    WAITING,
    RequestRecord,
    Runner,
    RunnerOptions,
    SchedulerStats,
)
from tests.fakes.ollama_scheduler import OllamaScheduler

POLL_SECONDS = 0.05  # how often a waiting thread looks whether its client is still there
QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"  # Ollama's ErrMaxQueue
GO_MAX_DURATION = (2**63 - 1) / 1e9  # seconds: what Ollama shows as "forever" in expires_at

_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_INT_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "draft_num_predict")


class QueueFull(Exception):
    """Ollama's pending queue is full: it answers 503."""


class ClientGone(Exception):
    """The client hung up before its request started."""


def runner_options(options: Any, default_num_ctx: int, context_limit: int) -> RunnerOptions:
    """Return the load options a request's "options" ask for; num_ctx is capped at the model's context."""
    given = options if isinstance(options, dict) else {}
    values = {key: int(given[key]) for key in _INT_OPTIONS
              if isinstance(given.get(key), (int, float)) and not isinstance(given[key], bool)}
    if isinstance(given.get("use_mmap"), bool):
        values["use_mmap"] = given["use_mmap"]
    num_ctx_auto, num_batch_auto = "num_ctx" not in values, "num_batch" not in values
    num_ctx = min(max(values.pop("num_ctx", default_num_ctx), 4), context_limit)
    return RunnerOptions(num_ctx=num_ctx, num_ctx_auto=num_ctx_auto, num_batch_auto=num_batch_auto, **values)


def keep_alive_seconds(value: Any) -> float | None:
    """Return a keep_alive as Ollama reads it, in seconds (negative: forever); None if absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return FOREVER if value < 0 else float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        return None
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return FOREVER if sign < 0 and seconds else seconds


def readable_within(sock: socket.socket, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``sock`` to have something to read (or its end closed). poll, not select:
    select cannot watch a descriptor numbered 1024 or more, which a long test session's sockets reach."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def peer_gone(sock: socket.socket) -> bool:
    """Tell, without waiting, whether the client closed its end of the connection."""
    try:
        return readable_within(sock, 0) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # reset, or already closed
        return True


class LiveScheduler:
    """An OllamaScheduler shared by the fake's request threads, on time.monotonic."""

    def __init__(self, stopping: threading.Event, *, default_num_ctx: int = 4096, **settings: Any) -> None:
        self.default_num_ctx = default_num_ctx
        self.model = OllamaScheduler(time.monotonic, **settings)
        self._stopping = stopping
        self._changed = threading.Condition()
        self._readers: dict[int, PromptReader] = {}  # runner id -> its prompt reading

    def admit(self, model: str, body: dict, sock: socket.socket, *, context_limit: int, parallel: int | None,
              load_seconds: float | None, needs_slot: bool = True, origin: Any = None) -> Lease:
        """Wait until the request holds a loaded runner and a slot; raise QueueFull or ClientGone.

        origin is kept on the request's record (the fake passes the request as it recorded it).
        """
        options = runner_options(body.get("options"), self.default_num_ctx, context_limit)
        with self._changed:
            record = self._changing(lambda: self.model.submit(
                model, options, keep_alive=keep_alive_seconds(body.get("keep_alive")), needs_slot=needs_slot,
                parallel=parallel, load_seconds=load_seconds, present=lambda: not peer_gone(sock), origin=origin))
            while record.state in (PENDING, WAITING):
                self._changed.wait(self._wait_seconds())
                if peer_gone(sock) or self._stopping.is_set():
                    self._changing(lambda: self.model.cancel(record))
                elif self._due():  # a load ended or a keep_alive ran out; other changes come with a notify
                    self._changing(self.model.settle)
        if record.state == REJECTED:
            raise QueueFull(QUEUE_FULL)
        if not record.admitted:
            raise ClientGone
        return Lease(self, record, sock)

    def unload(self, model: str) -> None:
        """Unload the model once idle, as keep_alive 0 with nothing to run asks."""
        with self._changed:
            self._changing(lambda: self.model.unload(model))

    def loaded(self) -> list[tuple[Runner, float]]:
        """Return the loaded runners with seconds until each expires, the longest first, as /api/ps lists them."""
        with self._changed:
            now = self._changing(self.model.settle)
            runners = [(runner, _expires_in(runner, now)) for runner in self.model.loaded()]
        return sorted(runners, key=lambda pair: -pair[1])

    def stats(self) -> SchedulerStats:
        """Return the scheduler's counters."""
        with self._changed:
            return self._changing(self.model.stats)

    def pending(self) -> list[RequestRecord]:
        """Return the requests waiting for their model to load, head first."""
        with self._changed:
            return self.model.pending

    def records(self, model: str | None = None) -> list[RequestRecord]:
        """Return the request records, oldest first (of one model, canonical name, if given)."""
        with self._changed:
            return [record for record in self.model.records if model in (None, record.model)]

    def context(self, record: RequestRecord) -> int:
        """The context a slot of the record's runner holds (its request's, if not bound to one)."""
        with self._changed:
            runner = self.model.runner_of(record)
            return (runner.options if runner is not None else record.options).num_ctx

    def load_prompt(self, record: RequestRecord, tokens: list[str]) -> int | None:
        with self._changed:
            return self.model.load_prompt(record, tokens)

    def read(self, record: RequestRecord, tokens: int, seconds_per_token: float) -> float:
        """Read the record's uncached prompt tokens on its runner, beside its other slots' (ollama_reading.py);
        return the seconds that took."""
        with self._changed:
            runner = self.model.runner_of(record)
            reader = self._readers.setdefault(runner.id, PromptReader(seconds_per_token))
        return reader.read(record.cache_slot, tokens, self._stopping)

    def processed(self, record: RequestRecord, tokens: list[str]) -> None:
        with self._changed:
            self.model.processed(record, tokens)

    def cache_slots(self, model: str) -> list[tuple[int, bool]]:
        """Return, for each cache slot of the model's runner, the tokens it holds and whether it is in use."""
        with self._changed:
            return self._changing(lambda: self.model.cache_slots(model))

    def first_token(self, record: RequestRecord) -> None:
        with self._changed:
            self.model.first_token(record)

    def end(self, record: RequestRecord, client_left: bool) -> None:
        """Free the request's slot: cancel it if its client left, else finish it."""
        with self._changed:
            self._changing(lambda: (self.model.cancel if client_left else self.model.finish)(record))

    def runner_of(self, record: RequestRecord) -> Runner | None:
        """Return the runner the request was bound to."""
        with self._changed:
            return self.model.runner_of(record)

    def _changing(self, action: Callable[[], Any]) -> Any:
        """Run action on the model (the lock held); wake the waiting threads if it changed anything."""
        before = self.model.changes
        result = action()
        if self.model.changes != before:
            self._changed.notify_all()
        return result

    def _due(self) -> bool:
        deadline = self.model.next_deadline()
        return deadline is not None and deadline <= time.monotonic()

    def _wait_seconds(self) -> float:
        deadline = self.model.next_deadline()
        if deadline is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(deadline - time.monotonic(), 0.001))


class Lease:
    """A request's hold on its runner and slot, from admission until its response closes."""

    def __init__(self, live: LiveScheduler, record: RequestRecord, sock: socket.socket) -> None:
        self.record = record
        self._live = live
        self._sock = sock
        self._completed = False
        self._released = False

    @property
    def loaded_at(self) -> float | None:
        return self.record.loaded_at

    @property
    def started_at(self) -> float | None:
        return self.record.started_at

    @property
    def context(self) -> int:
        """The context a slot of its runner holds: Ollama cuts a longer chat to fit it."""
        return self._live.context(self.record)

    def load_prompt(self, tokens: list[str]) -> int | None:
        """Take the cache slot the runner picks for the prompt; return how many tokens it held (None: no cache)."""
        return self._live.load_prompt(self.record, tokens)

    def read(self, tokens: int, seconds_per_token: float) -> float:
        """Read the prompt's uncached tokens, as its runner reads them beside its other slots; return the seconds."""
        return self._live.read(self.record, tokens, seconds_per_token)

    def processed(self, tokens: list[str]) -> None:
        """Note, in the request's cache slot, tokens its runner processed."""
        if self.record.cache_slot is not None:
            self._live.processed(self.record, tokens)

    def watch(self, events: Iterator[dict]) -> Iterator[dict]:
        """Pass events through, noting the first token and whether they all went out."""
        for event in events:
            self._live.first_token(self.record)
            yield event
        self._completed = True

    def hold(self, build: Callable[[], Response]) -> Response:
        """Build the response; let go of the slot when it closes (or if building it fails)."""
        try:
            response = build()
        except BaseException:
            self.release()
            raise
        response.call_on_close(self.release)
        return response

    def release(self) -> None:
        """Free the slot: a finish, or a cancellation if the client left before the end."""
        if self._released:
            return
        self._released = True
        self._live.end(self.record, client_left=not self._completed and peer_gone(self._sock))


class Unscheduled:
    """What the fake does without slots: every request goes on at once, as it always has."""

    def admit(self, *args: Any, **kwargs: Any) -> NoLease:
        return NO_LEASE

    def unload(self, model: str) -> None:
        pass


class NoLease:
    """The lease of a request that did not wait for anything."""

    loaded_at = None
    started_at = None

    context = None  # nothing loaded for it: nothing to cut a prompt to

    def load_prompt(self, tokens: list[str]) -> None:
        return None

    def processed(self, tokens: list[str]) -> None:
        pass

    def watch(self, events: Iterator[dict]) -> Iterator[dict]:
        return events

    def hold(self, build: Callable[[], Response]) -> Response:
        return build()

    def release(self) -> None:
        pass


NO_LEASE = NoLease()


def _expires_in(runner: Runner, now: float) -> float:
    """Return seconds until an idle runner expires, or its keep_alive while busy; forever as Go shows it."""
    seconds = runner.keep_alive if runner.expires_at is None else runner.expires_at - now
    return GO_MAX_DURATION if math.isinf(seconds) else seconds
