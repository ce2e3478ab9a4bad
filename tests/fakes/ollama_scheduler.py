"""A model of one Ollama server's scheduler, driven by a clock: no sockets, no threads, no sleeping.

It follows server/sched.go and the llama server's slot semaphore (llm/llama_server.go):

- A request whose model is loaded with the same load options takes that runner at once, even ahead
  of requests queued before it (getRunner's shortcut), then waits for one of the runner's slots;
  slots go first come, first served (a FIFO semaphore of ``parallel`` permits).
- Any other request joins the pending FIFO, whose head is served alone (processPending): it loads
  its model if fewer than ``max_loaded_models`` runners are loaded; otherwise it marks a runner to
  unload (the runner of its own model if the load options differ: a reload; else the first idle one
  by keep_alive then name, or the first of those if none is idle) and blocks the FIFO until some
  runner unloads. A marked runner unloads once its last request is done; requests with its options
  may still join it meanwhile, as they do in Ollama.
- A load takes ``load_seconds``; requests bound to a loading runner wait for it. load_duration
  ends when a request holds a loaded runner, before it waits for a slot.
- An idle runner unloads when its keep_alive runs out (0: at once; negative: never). A request's
  keep_alive, when given, becomes its runner's.
- A client that leaves while its request waits gets it dropped, never started; one that leaves
  while it runs frees its slot. ``present`` probes, checked when the FIFO's head is taken and when
  a slot is granted, stand for Go's request context, which is cancelled the moment the client goes.
- The FIFO holds at most ``max_queue`` requests besides its head; more are rejected (Ollama: 503).
- With ``prompt_cache``, each runner keeps its slots' prompts and a RAM prompt cache of
  ``prompt_cache_tokens`` (ollama_cache.py, as llama-server does): a running request takes a slot for
  its prompt (``load_prompt``), notes what it processes there (``processed``), and frees it when it ends.

Out of scope: memory fitting (only the count of runners limits loads), adapters and projectors,
and a load whose first request is cancelled, which Ollama aborts: here it goes on.

Every method reads the clock and first brings the model up to that time (``settle``).
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from tests.fakes.ollama_cache import PromptCache
from tests.fakes.ollama_runner import (
    CANCELLED,
    DONE,
    DROPPED,
    FINISHED,
    FOREVER,
    PENDING,
    READY,
    REJECTED,
    RUNNING,
    WAITING,
    RequestRecord,
    Runner,
    RunnerOptions,
    SchedulerStats,
)

DEFAULT_KEEP_ALIVE = 300.0  # OLLAMA_KEEP_ALIVE: 5m
DEFAULT_NUM_PARALLEL = 1  # OLLAMA_NUM_PARALLEL
DEFAULT_MAX_LOADED_MODELS = 3  # OLLAMA_MAX_LOADED_MODELS unset: 3 per GPU, and the model has one
DEFAULT_MAX_QUEUE = 512  # OLLAMA_MAX_QUEUE


class OllamaScheduler:
    """Decides, as one Ollama server does, which requests run, where, and when models load and unload."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        num_parallel: int = DEFAULT_NUM_PARALLEL,
        max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        keep_alive: float = DEFAULT_KEEP_ALIVE,
        load_seconds: float = 0.0,
        prompt_cache: bool = False,
        prompt_cache_tokens: int | None = None,
    ) -> None:
        if num_parallel < 1 or max_loaded_models < 1:
            raise ValueError("num_parallel and max_loaded_models must be at least 1")
        self.num_parallel = num_parallel
        self.max_loaded_models = max_loaded_models
        self.max_queue = max_queue
        self.keep_alive = keep_alive
        self.load_seconds = load_seconds
        self.prompt_cache = prompt_cache
        self.prompt_cache_tokens = prompt_cache_tokens
        self.records: list[RequestRecord] = []  # every request, in the order it came
        self.runners: dict[str, Runner] = {}  # model -> its loaded (or loading) runner
        self.unloaded: list[Runner] = []  # runners gone, in the order they went
        self.changes = 0  # grows whenever requests or runners change state: a cue to wake waiters
        self._clock = clock
        self._settled_at = clock()
        self._pending: deque[RequestRecord] = deque()
        self._awaited: Runner | None = None  # marked to unload; the FIFO's head waits for an unload
        self._reloading: set[str] = set()  # models unloaded to be loaded again with other options
        self._plans: dict[int, tuple[int, float]] = {}  # record id -> (slots, load seconds) if it loads
        self._counts: Counter[str] = Counter()
        self._max_concurrent: dict[str, int] = {}
        self._ids = itertools.count(1)

    # Requests

    def submit(
        self,
        model: str,
        options: RunnerOptions | None = None,
        *,
        keep_alive: float | None = None,
        needs_slot: bool = True,
        parallel: int | None = None,
        load_seconds: float | None = None,
        present: Callable[[], bool] | None = None,
        origin: Any = None,
    ) -> RequestRecord:
        """Take a request: it joins a loaded runner at once, or the FIFO (if the FIFO has room).

        parallel and load_seconds apply if this request loads the model (default: the scheduler's);
        keep_alive is in seconds (negative: forever); present tells whether its client is there;
        origin is kept on the record, to find the request again.
        """
        now = self.settle()
        options = options or RunnerOptions()
        record = RequestRecord(next(self._ids), model, options, keep_alive, needs_slot, now, present, origin=origin)
        self.records.append(record)
        self._plans[record.id] = (parallel or self.num_parallel,
                                  self.load_seconds if load_seconds is None else load_seconds)
        runner = self.runners.get(model)
        if runner is not None and not runner.options.reload_needed_for(options):
            self._bind(record, runner, now)
        elif len(self._pending) > self.max_queue:  # the head is being served, not queued
            record.state, record.finished_at = REJECTED, now
            self._counts[REJECTED] += 1
        else:
            self._pending.append(record)
        self.settle()
        return record

    def first_token(self, record: RequestRecord) -> None:
        """Note when the request's first token went out."""
        if record.first_token_at is None:
            record.first_token_at = self._clock()

    def finish(self, record: RequestRecord) -> None:
        """End a running (or ready) request: its slot and its hold on the runner are freed."""
        now = self.settle()
        if record.state in (RUNNING, READY):
            self._end(record, FINISHED, now)
        self.settle()

    def cancel(self, record: RequestRecord, left_at: float | None = None) -> None:
        """The request's client went away (at left_at, default now): drop it if waiting, else free its slot."""
        now = self.settle()
        record.left_at = now if left_at is None else left_at
        if record.state in (PENDING, WAITING):
            self._end(record, DROPPED, now)
        elif record.state in (RUNNING, READY):
            if record.started_at is not None and record.started_at > record.left_at:
                self._counts["started_after_client_left"] += 1
            self._end(record, CANCELLED, now)
        self.settle()

    def load_prompt(self, record: RequestRecord, tokens: list[str]) -> int | None:
        """Give a running request the cache slot its runner picks for its prompt; return how many tokens were cached.

        None: the runner keeps no prompt cache.
        """
        runner = self.runner_of(record)
        if runner is None or runner.prompt_cache is None or record.state != RUNNING:
            return None
        record.cache_slot, record.cached_tokens = runner.prompt_cache.load(tokens, self._clock())
        record.prompt_tokens = len(tokens)
        return record.cached_tokens

    def processed(self, record: RequestRecord, tokens: list[str]) -> None:
        """Note in the request's cache slot tokens its runner processed: its prompt's uncached rest, then its answer."""
        runner = self.runner_of(record)
        if record.cache_slot is not None and record in runner.users:
            runner.prompt_cache.extend(record.cache_slot, tokens)

    def cache_slots(self, model: str) -> list[tuple[int, bool]]:
        """Return, for each cache slot of the model's runner, the tokens it holds and whether it is in use."""
        self.settle()
        runner = self.runners.get(model)
        return [] if runner is None or runner.prompt_cache is None else runner.prompt_cache.held()

    def unload(self, model: str) -> None:
        """Unload the model once it is idle, as a request with keep_alive 0 and nothing to run asks."""
        now = self.settle()
        runner = self.runners.get(model)
        if runner is not None:
            runner.keep_alive = 0
            if runner.idle:
                runner.expires_at = now
        self.settle()

    # What a test reads

    def stats(self) -> SchedulerStats:
        """Return the counters so far."""
        self.settle()
        return SchedulerStats.of(self._counts, self._max_concurrent)

    def loaded(self) -> list[Runner]:
        """Return the runners loaded or loading now."""
        self.settle()
        return list(self.runners.values())

    def runner_of(self, record: RequestRecord) -> Runner | None:
        """Return the runner the record was bound to, loaded or gone."""
        everyone = [*self.runners.values(), *self.unloaded]
        return next((runner for runner in everyone if runner.id == record.runner_id), None)

    @property
    def pending(self) -> list[RequestRecord]:
        """Return the requests in the FIFO, head first."""
        return list(self._pending)

    def next_deadline(self) -> float | None:
        """Return when the model changes next by itself (a load ends, a keep_alive runs out), if ever.

        That moment may have passed: then ``settle`` has work to do.
        """
        moments = [runner.ready_at for runner in self.runners.values() if runner.ready_at > self._settled_at]
        moments += [runner.expires_at for runner in self.runners.values() if runner.expires_at is not None]
        return min(moments, default=None)

    # Time

    def settle(self) -> float:
        """Bring the model up to the clock's time; return that time."""
        now = self._clock()
        while self._step(now):
            self.changes += 1
        self._settled_at = now
        return now

    def _step(self, now: float) -> bool:
        """Make one round of changes due at now; tell whether anything changed."""
        changed = False
        for runner in list(self.runners.values()):
            if runner.idle and (runner.unload_reason or (runner.expires_at is not None and runner.expires_at <= now)):
                self._unload(runner, now)
                changed = True
        changed |= self._serve_pending(now)
        for runner in self.runners.values():
            if runner.ready(now):
                changed |= self._grant_slots(runner, now)
        return changed

    def _serve_pending(self, now: float) -> bool:
        """Serve the FIFO's head as processPending does, until it blocks or empties."""
        changed = False
        while self._pending and self._awaited is None:
            head = self._pending[0]
            if not head.client_present():
                self._end(head, DROPPED, now)
                changed = True
                continue
            runner = self.runners.get(head.model)
            if runner is not None and not runner.options.reload_needed_for(head.options):
                self._bind(self._pending.popleft(), runner, now)
            elif runner is None and len(self.runners) < self.max_loaded_models:
                self._load(self._pending.popleft(), now)
            else:
                self._mark_to_unload(runner or self._runner_to_unload(), "reload" if runner else "evicted", now)
            changed = True
        return changed

    def _runner_to_unload(self) -> Runner:
        """Pick the runner to make room, as findRunnerToUnload does: by keep_alive then name, idle first."""
        ordered = sorted(self.runners.values(), key=lambda runner: (runner.keep_alive, runner.model))
        return next((runner for runner in ordered if runner.idle), ordered[0])

    def _mark_to_unload(self, runner: Runner, reason: str, now: float) -> None:
        """Unload runner as soon as it is idle, and block the FIFO until a runner unloads."""
        runner.unload_reason = runner.unload_reason or reason
        runner.keep_alive = 0
        self._awaited = runner
        if runner.idle:
            self._unload(runner, now)

    def _load(self, record: RequestRecord, now: float) -> None:
        """Start a runner for the record's model with its options, and bind the record to it."""
        parallel, seconds = self._plans[record.id]
        keep_alive = self.keep_alive if record.keep_alive is None else record.keep_alive
        cache = PromptCache(parallel, ram_tokens=self.prompt_cache_tokens) if self.prompt_cache else None
        runner = Runner(next(self._ids), record.model, record.options, parallel, now, now + seconds, keep_alive,
                        prompt_cache=cache)
        self.runners[record.model] = runner
        self._counts["loads"] += 1
        if record.model in self._reloading:
            self._reloading.discard(record.model)
            self._counts["reloads"] += 1
        self._bind(record, runner, now)

    def _unload(self, runner: Runner, now: float) -> None:
        """Remove an idle runner; any unload wakes the FIFO's head, as Ollama's unloaded event does."""
        reason = runner.unload_reason or "expired"
        runner.unload_reason, runner.unloaded_at = reason, now
        del self.runners[runner.model]
        self.unloaded.append(runner)
        self._counts[reason] += 1
        if reason == "reload":
            self._reloading.add(runner.model)
        self._awaited = None

    def _bind(self, record: RequestRecord, runner: Runner, now: float) -> None:
        """Give the record a hold on runner (useLoadedRunner); it waits there for the load and a slot."""
        record.state, record.runner_id = WAITING, runner.id
        runner.users.append(record)
        runner.expires_at = None
        if record.keep_alive is not None:
            runner.keep_alive = FOREVER if record.keep_alive < 0 else record.keep_alive
        if runner.ready(now):
            record.loaded_at = now

    def _grant_slots(self, runner: Runner, now: float) -> bool:
        """Let the records waiting on a loaded runner go on, slots first come, first served."""
        changed = False
        for record in runner.waiting:
            if record.loaded_at is None:
                record.loaded_at = runner.ready_at
            if not record.needs_slot:
                record.state = READY
            elif len(runner.running) >= runner.parallel:
                continue
            elif not record.client_present():
                self._end(record, DROPPED, now)
            else:
                record.state, record.started_at = RUNNING, now
                busy = len(runner.running)
                self._max_concurrent[runner.model] = max(self._max_concurrent.get(runner.model, 0), busy)
            changed = True
        return changed

    def _end(self, record: RequestRecord, state: str, now: float) -> None:
        """Close the record in state; let go of its place in the FIFO or its hold on a runner."""
        assert state in DONE
        record.state, record.finished_at = state, now
        self.changes += 1
        if state == DROPPED and record.left_at is None:
            record.left_at = now
        self._counts[state] += 1
        if record in self._pending:
            self._pending.remove(record)
        runner = self.runners.get(record.model)
        if runner is not None and record in runner.users:
            runner.users.remove(record)
            if record.cache_slot is not None:
                runner.prompt_cache.release(record.cache_slot, now)
            if runner.idle:  # its keep_alive timer starts: 0 expires it at once, forever never
                runner.expires_at = None if runner.keep_alive == FOREVER else now + max(runner.keep_alive, 0)
