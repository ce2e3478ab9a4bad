"""What the model of Ollama's scheduler keeps: runners, their load options, and one record per request.

The load options are Ollama's api.Runner fields, compared as server/sched.go's needsReload compares
them (Ollama 0.33); adapters and projectors are out of scope. The rules it follows:

- A request's num_ctx is the one it sends, else the model's Modelfile one, else OLLAMA_CONTEXT_LENGTH,
  else a default by VRAM: 4096 under 23 GiB, 32768 under 47 GiB, 262144 above (routes.go,
  modelOptions and Serve). Only in the last case is it automatic (usesAutomaticNumCtx). getRunner
  raises it to 4 at least; it is cut to the model's training context when compared and loaded
  (effectiveContext; NewLlamaServer), and that cut value is what the runner keeps and /api/ps shows.
- needsReload: the request's api.Runner must equal the runner's (reflect.DeepEqual), larger or
  smaller alike, except that an automatic num_ctx (num_batch) on both sides takes the runner's, and a
  negative num_gpu matches any. So a request naming no num_ctx reloads a runner loaded with an
  explicit value other than the default, and one naming 2048 reloads a runner loaded with 4096.
- A runner serves num_parallel requests (OLLAMA_NUM_PARALLEL; 1 for embedding models and some
  architectures); its llama-server runs with ``-c num_ctx*num_parallel -np num_parallel``
  (llm/llama_server.go): num_ctx 8192 and two slots show as ``-c 16384 -np 2``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.fakes.ollama_cache import PromptCache

FOREVER = math.inf  # a negative keep_alive: the runner never expires

# A request's way through the scheduler.
PENDING = "pending"  # in the FIFO, waiting for its model to be loaded (or reloaded)
WAITING = "waiting"  # holds a runner: waiting for it to finish loading, or for a free slot
RUNNING = "running"  # holds one of the runner's slots
READY = "ready"  # holds a loaded runner and needs no slot (a request that only loads the model)
FINISHED = "finished"
CANCELLED = "cancelled"  # its client went away while it ran: the slot was freed at once
DROPPED = "dropped"  # its client went away before it started: it never ran
REJECTED = "rejected"  # the FIFO was full: Ollama answers 503 at once
DONE = frozenset({FINISHED, CANCELLED, DROPPED, REJECTED})


@dataclass(frozen=True)
class RunnerOptions:
    """The options a runner is started with; asking for other ones makes Ollama reload the model."""

    num_ctx: int = 4096
    num_ctx_auto: bool = True  # the request did not say: Ollama's default context length
    num_batch: int = 512
    num_batch_auto: bool = True
    num_gpu: int = -1  # negative: Ollama decides, and any loaded runner will do
    main_gpu: int | None = None
    use_mmap: bool | None = None
    num_thread: int = 0
    draft_num_predict: int = 4

    def reload_needed_for(self, wanted: RunnerOptions) -> bool:
        """Tell whether a runner started with these options must reload to serve wanted (needsReload)."""
        if self.num_ctx_auto and wanted.num_ctx_auto:
            wanted = replace(wanted, num_ctx=self.num_ctx)
        if self.num_batch_auto and wanted.num_batch_auto:
            wanted = replace(wanted, num_batch=self.num_batch)
        loaded = self
        if wanted.num_gpu < 0:
            loaded, wanted = replace(loaded, num_gpu=-1), replace(wanted, num_gpu=-1)
        return loaded._values() != wanted._values()

    def _values(self) -> tuple:
        """Return the fields Go's reflect.DeepEqual sees in api.Runner (not the auto flags)."""
        return (self.num_ctx, self.num_batch, self.num_gpu, self.main_gpu, self.use_mmap, self.num_thread,
                self.draft_num_predict)


@dataclass(eq=False)
class RequestRecord:
    """One request to the scheduler and what became of it; times are the scheduler's clock."""

    id: int
    model: str
    options: RunnerOptions
    keep_alive: float | None  # seconds; None: the request did not say
    needs_slot: bool  # False for a request that only loads the model
    queued_at: float
    present: Callable[[], bool] | None = field(default=None, repr=False)  # is the client still there?
    state: str = PENDING
    runner_id: int | None = None
    loaded_at: float | None = None  # handed a loaded runner: Ollama's load_duration ends here
    started_at: float | None = None  # got a slot
    first_token_at: float | None = None
    finished_at: float | None = None
    left_at: float | None = None  # when its client went away, if it did
    origin: Any = field(default=None, repr=False)  # what the caller submitted it as (the fake: its Recorded)
    prompt_tokens: int | None = None  # with a prompt cache: the prompt's length in tokens
    cached_tokens: int | None = None  # ... how many of them its cache slot held (not processed again)
    cache_slot: int | None = None  # ... and which of its runner's cache slots it took

    @property
    def load_seconds(self) -> float | None:
        """Return the time from arrival to a loaded runner, as Ollama reports load_duration."""
        return None if self.loaded_at is None else self.loaded_at - self.queued_at

    @property
    def admitted(self) -> bool:
        """Tell whether the request may go on: it holds a slot, or a loaded runner if it needs none."""
        return self.state in (RUNNING, READY)

    def client_present(self) -> bool:
        """Ask the client's probe whether it is still there (no probe: it is)."""
        return self.present is None or self.present()


@dataclass(eq=False)
class Runner:
    """One model loaded (or loading) on the server, with its slots."""

    id: int
    model: str
    options: RunnerOptions
    parallel: int  # slots: requests it runs at once
    load_started: float
    ready_at: float
    keep_alive: float  # seconds it stays loaded once idle; 0 unloads it at once
    users: list[RequestRecord] = field(default_factory=list)  # bound and not done, in the order they came
    expires_at: float | None = None  # set while idle
    unload_reason: str | None = None  # set once it is marked to unload as soon as it is idle
    unloaded_at: float | None = None
    prompt_cache: PromptCache | None = None  # its cache slots, if the server models them

    @property
    def context_length(self) -> int:
        """Return the context length /api/ps shows for it: a slot's (llama.ContextLength)."""
        return self.options.num_ctx

    @property
    def ctx_size(self) -> int:
        """Return its llama-server's ``-c``: every slot's context together (num_ctx times num_parallel)."""
        return self.options.num_ctx * self.parallel

    @property
    def running(self) -> list[RequestRecord]:
        return [user for user in self.users if user.state == RUNNING]

    @property
    def waiting(self) -> list[RequestRecord]:
        return [user for user in self.users if user.state == WAITING]

    @property
    def idle(self) -> bool:
        return not self.users

    def ready(self, now: float) -> bool:
        return self.ready_at <= now


@dataclass(frozen=True)
class SchedulerStats:
    """Counters over a scheduler's life."""

    loads: int  # runners started, reloads included
    reloads: int  # loads that replaced a runner of the same model started with other options
    evictions: int  # runners unloaded to make room for another model
    expiries: int  # runners unloaded because their keep_alive ran out (or was 0)
    finished: int
    cancelled: int  # stopped while running because the client went away
    dropped: int  # never started because the client went away while waiting
    rejected: int  # refused because the FIFO was full
    started_after_client_left: int  # started although the client had already gone
    max_concurrent: dict[str, int]  # model -> the most requests it ran at once

    @classmethod
    def of(cls, counts: Counter[str], max_concurrent: dict[str, int]) -> SchedulerStats:
        """Build the stats from the scheduler's counts, keyed by end state or unload reason."""
        return cls(loads=counts["loads"], reloads=counts["reloads"], evictions=counts["evicted"],
                   expiries=counts["expired"], finished=counts[FINISHED], cancelled=counts[CANCELLED],
                   dropped=counts[DROPPED], rejected=counts[REJECTED],
                   started_after_client_left=counts["started_after_client_left"],
                   max_concurrent=dict(max_concurrent))
