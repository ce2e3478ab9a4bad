"""What the scheduler believes each server is running: loaded models, their options, busy slots.

Ollama runs up to ``num_parallel`` requests at once per loaded model (one for an
embedding model and some architectures, ``runners``), keeps up to
``max_loaded_models`` models loaded, and unloads an idle one to load another.
The proxy mirrors that from what it sends (and from ``/api/ps`` and ``/api/show``),
so it can tell, without asking, whether a request would start at once on a server,
load its model there first, or wait in Ollama's queue: the last is never sent.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum

from cachetools import LRUCache

from ollama_proxy.scheduler.decisions.caches import PromptCaches
from ollama_proxy.scheduler.decisions.options import largest, unify, within_training
from ollama_proxy.scheduler.decisions.runners import KV_BYTES_UNKNOWN
from ollama_proxy.scheduler.decisions.side_by_side import READS_KEPT, Read

MIB = 1024 * 1024
MODELS_ASKED = 256  # models whose largest asked options a server remembers, the least recently asked forgotten


@dataclass(frozen=True)
class ServerSpec:
    """One server's capacity, as its Ollama is configured."""

    name: str
    num_parallel: int = 1  # OLLAMA_NUM_PARALLEL
    max_loaded_models: int = 3  # OLLAMA_MAX_LOADED_MODELS
    max_concurrent: int | None = None  # the proxy's own cap over all its models
    prompt_cache_mib: int = 8192  # each llama-server's RAM prompt cache (--cache-ram); 0: none
    model_parallel: tuple[tuple[str, int], ...] = ()  # (model, slots): fewer than num_parallel, for these

    def slots_for(self, model: str) -> int:
        """The slots the proxy uses of ``model`` here: ``num_parallel``, or fewer where the configuration says."""
        return min([self.num_parallel, *(slots for name, slots in self.model_parallel if name == model)])


@dataclass(frozen=True)
class Loaded:
    """A model a server says it has loaded (``/api/ps``), and how Ollama runs it (``/api/show``, ``runners``)."""

    options: dict  # the reload options it runs with
    one_slot: bool = False  # Ollama runs it with one slot, whatever OLLAMA_NUM_PARALLEL says
    kv_bytes: int = KV_BYTES_UNKNOWN  # a token's keys and values: what the RAM prompt cache holds of it
    train_ctx: int | None = None  # the context it was trained on, which Ollama caps a num_ctx at (None: unsaid)


@dataclass
class Runner:
    """A model loaded on a server."""

    options: dict  # the reload options it was loaded with
    slots: int = 1  # requests it runs at once
    running: int = 0
    lent: int = 0  # free slots lent to workers, to start requests on without asking (``core.Loan``)
    last_used: float = 0.0
    last_start: float = -math.inf  # when a request last began here
    ready_at: float = -math.inf  # when its load, under way, is expected to end: its requests start reading then
    reserved_by: str | None = None  # a ticket waiting for it to drain, to reload it with larger options
    train_ctx: int | None = None  # the context it was trained on: a num_ctx past it is the same to Ollama
    caches: PromptCaches = field(default_factory=lambda: PromptCaches(1))  # a new runner's slots hold nothing
    reads: deque[Read] = field(default_factory=lambda: deque(maxlen=READS_KEPT))  # its latest prompts' reading


class Start(Enum):
    WARM = "warm"  # loaded with options the request can use: it starts at once
    LOAD = "load"  # not loaded: Ollama loads it first (unloading an idle model if it must)
    RELOAD = "reload"  # loaded, idle, with smaller options: Ollama reloads it first


@dataclass(frozen=True)
class Placement:
    """How a request would start on a server, with the reload options to send."""

    server: str
    start: Start
    options: dict
    evict: str | None = None  # the idle model Ollama will unload to make room


@dataclass
class ServerSlots:
    """One Ollama server as the scheduler keeps it: its models loaded (runners) and their slots taken or lent."""

    spec: ServerSpec
    runners: dict[str, Runner] = field(default_factory=dict)
    # model -> the largest reload options asked for it here so far: what it loads, or reloads, with (``options``)
    asked: LRUCache[str, dict] = field(default_factory=lambda: LRUCache(MODELS_ASKED))
    listed: bool = False  # whether the server has said what it has loaded (``/api/ps``) since the scheduler began

    @property
    def running(self) -> int:
        return sum(r.running for r in self.runners.values())

    def slots_of(self, model: str) -> int:
        """The slots ``model`` runs with here, loaded or not."""
        runner = self.runners.get(model)
        return self.spec.slots_for(model) if runner is None else min(runner.slots, self.spec.slots_for(model))

    def free_slots(self, model: str) -> int:
        """Requests for ``model`` that would start at once here, as loaded now (a lent slot is not free)."""
        runner = self.runners.get(model)
        if runner is None or runner.reserved_by is not None:
            return 0
        return min(self.slots_of(model) - runner.running - runner.lent, self._under_cap())

    def placement(self, model: str, asked: dict, enforced=(), ticket: str | None = None) -> Placement | None:
        """Return how a request for ``model`` asking ``asked`` would start here now, or None if it would wait.

        What it asks is remembered first: a load or reload here takes the largest value asked so far,
        waiting requests' included, so that Ollama loads the model once for all of them.
        """
        chosen = self.asked[model] = largest(self.asked.get(model), asked, enforced)
        if self._under_cap() <= 0:
            return None
        runner = self.runners.get(model)
        if runner is None:
            evict = self._room_for_one_more()
            if evict is False:
                return None
            return Placement(self.spec.name, Start.LOAD, unify(None, asked, enforced, chosen)[0], evict or None)
        options, reload = unify(runner.options, within_training(asked, runner.train_ctx), enforced, chosen)
        if not reload:
            # Its own reservation too: what it waited to reload for may already be loaded (``/api/ps`` says so).
            free = runner.reserved_by in (None, ticket) and runner.running + runner.lent < self.slots_of(model)
            return Placement(self.spec.name, Start.WARM, options) if free else None
        if runner.running == runner.lent == 0 and runner.reserved_by in (None, ticket):
            return Placement(self.spec.name, Start.RELOAD, options)
        return None

    @property
    def capacity(self) -> int:
        """Requests the server runs at once over all its models."""
        cap = self.spec.max_concurrent
        return self.spec.num_parallel * self.spec.max_loaded_models if cap is None else cap

    def _under_cap(self) -> int:
        return self.capacity - sum(r.running + r.lent for r in self.runners.values())

    def _room_for_one_more(self) -> str | bool:
        """'' if a model can load beside the others, an idle model's name to unload, False if none can go."""
        if len(self.runners) < self.spec.max_loaded_models:
            return ""
        idle = [(r.last_used, name) for name, r in self.runners.items()
                if r.running == r.lent == 0 and r.reserved_by is None]
        return min(idle)[1] if idle else False

    def begin(self, model: str, placement: Placement, now: float, embeds: bool = False,
              load_seconds: float = 0.0) -> None:
        """Count a request in on ``model`` as placed; load or reload the runner it needs (an embedding's: one slot),
        expected to take ``load_seconds``."""
        if placement.evict:
            self.runners.pop(placement.evict, None)
        runner = self.runners.get(model)
        if runner is None or placement.start is not Start.WARM:
            runner = self.warm(model, Loaded(placement.options, one_slot=embeds))
            runner.ready_at = now + load_seconds
        runner.running += 1
        runner.last_used = runner.last_start = now

    def adopt(self, model: str, options: dict, now: float) -> None:
        """Count in a request already running here, as a worker tells a new arbiter: its load, or eviction, is done.

        Whatever the worker says is taken: a model this arbiter has not seen loaded, or beyond
        ``max_loaded_models`` (``/api/ps`` says what is loaded at its next read).
        """
        runner = self.runners.get(model)
        if runner is None:
            runner = self.warm(model, Loaded(options))
        runner.running += 1
        runner.last_used = now

    def warm(self, model: str, loaded: Loaded) -> Runner:
        """Count ``model`` as newly loaded here as ``loaded`` says: its slots as many as Ollama gives it, empty."""
        slots = 1 if loaded.one_slot else self.spec.slots_for(model)
        runner = self.runners[model] = Runner(dict(loaded.options), slots, train_ctx=loaded.train_ctx,
                                              caches=PromptCaches(slots, self._ram_tokens(loaded.kv_bytes)))
        return runner

    def _ram_tokens(self, kv_bytes: int) -> int:
        return self.spec.prompt_cache_mib * MIB // max(1, kv_bytes)

    def end(self, model: str, now: float, to_loan: bool = False) -> None:
        """Count a request out; its slot is free again, or back in the loan it started on."""
        runner = self.runners.get(model)
        if runner is not None and runner.running > 0:
            runner.running -= 1
            runner.lent += to_loan
            runner.last_used = now

    def lend(self, model: str, slots: int) -> None:
        self.runners[model].lent += slots

    def on_loan(self, model: str, now: float) -> None:
        """Count in a request a worker started on a slot lent to it."""
        runner = self.runners[model]
        runner.lent -= 1
        runner.running += 1
        runner.last_used = now

    def unlend(self, model: str, slots: int) -> None:
        runner = self.runners.get(model)
        if runner is not None:
            runner.lent = max(0, runner.lent - slots)

    def loaded(self, models: dict[str, Loaded]) -> None:
        """Take what the server says it has loaded (``/api/ps``), keeping the counts of requests in flight.

        The listing was read a moment ago: a runner busy now (with a request the proxy sent since) is the
        newer word, and a listed model that would make more than ``max_loaded_models`` beside the busy
        runners is one they replaced.
        """
        self.listed = True
        runners = {name: r for name, r in self.runners.items() if r.running + r.lent > 0}
        for name, loaded in models.items():
            if name in runners or len(runners) < self.spec.max_loaded_models:
                runners[name] = self._refreshed(name, loaded)
        self.runners = runners

    def _refreshed(self, name: str, loaded: Loaded) -> Runner:
        runner = self.runners.get(name)
        if runner is None:
            return self.warm(name, loaded)
        runner.options = {**runner.options, **loaded.options}
        runner.train_ctx = loaded.train_ctx or runner.train_ctx
        runner.slots = 1 if loaded.one_slot else self.spec.slots_for(name)
        runner.caches.resize(runner.slots, self._ram_tokens(loaded.kv_bytes))
        return runner


def scaled(specs: list[ServerSpec], share: int) -> list[ServerSpec]:
    """Each server's slots divided among ``share`` instances (at least one each)."""
    if share <= 1:
        return list(specs)
    return [replace(spec, num_parallel=max(1, spec.num_parallel // share),
                    max_concurrent=None if spec.max_concurrent is None else max(1, spec.max_concurrent // share))
            for spec in specs]
