"""Decide who runs next and where: the scheduler's whole logic, without I/O, driven by a clock.

Every event (a request submitted, ended or cancelled; a server's loaded models
refreshed) returns the grants it made possible: a slot freed while anything
waits is handed on in the same call, never polled for. The caller sends each
granted request to its server with the reload options the grant carries.

Order: the waiting requests in turn (``fairness``), each placed on the best
server that would start it now (``servers``): a warm slot first; a server that
must load the model only when the wait for a warm slot is expected to be longer
than the load. A request that cannot start anywhere now waits; one behind it
that can, starts: no slot stays idle while work it could run waits.

One exception to the order keeps questions from waiting on a batch job's rhythm
(``_yield_to``): when a slot frees, a request expected to hold a slot much longer
than the one whose turn it is may start first, if every request it passes is
still expected to start within ``yield_within`` seconds, on slots about to free.
Long answers then start at the moments slots free rather than all together after
a burst of short ones, so they do not end together either, and a slot frees
every so often instead of all of them once an answer.

While nothing waits, the order has nothing to decide: the scheduler lends each
worker a share of the free warm slots (``lend``), and a worker starts requests
on them without asking, then says so (``start_on_loan``). The moment anything
waits, every loan is called back (``recall``); what its worker returns unused
(``returned``) is free again. A lent slot counts as taken, so no server is ever
sent more than it runs.
"""

from __future__ import annotations

import heapq
import itertools
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from cachetools import LRUCache

from ollama_proxy.config import SchedulingSettings
from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.caches import CacheSlot, Pick
from ollama_proxy.scheduler.estimates import MODELS_KEPT, Estimates
from ollama_proxy.scheduler.fairness import FairShare, Share, class_rank
from ollama_proxy.scheduler.options import unify
from ollama_proxy.scheduler.prefix import Chain, prompt_tokens, shared_tokens
from ollama_proxy.scheduler.servers import Placement, ServerSpec, ServerState, Start
from ollama_proxy.scheduler.snapshot import snapshot

HOLD_TOKENS = 1024  # a prompt shorter than this is read again in moments: not worth holding a slot for
RETURN_MARGIN, RETURN_SLACK = 2.0, 1.0  # a conversation is expected back within twice its last return time, and 1 s
LONGER = 2.0  # how much longer than the request whose turn it is a request must be expected to run to go first


_SETTINGS = SchedulingSettings()  # the defaults, declared once with the settings


@dataclass(frozen=True)
class Bounds:
    """How much may wait, and for how long (``scheduling.*``; each default is the setting's)."""

    max_queued_per_principal: int = _SETTINGS.max_queued_per_principal
    max_end_users_per_key: int = _SETTINGS.max_end_users_per_key  # end users with fair shares of their own
    max_queued_per_model: int = _SETTINGS.max_queued_per_model  # per server and model
    max_wait: float = _SETTINGS.max_wait  # seconds a request may wait for a slot
    batch_ageing: float = _SETTINGS.batch_ageing  # seconds after which a waiting batch request counts as interactive
    interactive_headroom: int = _SETTINGS.interactive_headroom  # warm slots batch work leaves free for people
    headroom_window: float = _SETTINGS.headroom_window  # seconds after an interactive request for a model it holds
    fair_memory: float = _SETTINGS.fair_memory  # seconds an idle principal keeps what it had over the least-served
    prefix_hold: float = _SETTINGS.prefix_hold  # seconds a long prompt waits at most for a slot held for another
    yield_within: float = _SETTINGS.yield_within  # seconds one may wait so that a much longer one starts first

    @classmethod
    def of(cls, settings: SchedulingSettings) -> Bounds:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass
class Ticket:
    """One request waiting for, or holding, a slot."""

    id: str
    share: Share
    model: str
    candidates: tuple[str, ...]  # the servers that may serve it
    asked: dict = field(default_factory=dict)  # the reload options it asked for
    enforced: frozenset[str] = frozenset()  # those a per-model override fixed
    enqueued: float = 0.0
    yielded_at: float | None = None  # when it first let a longer request go ahead of it
    prefix: Chain = ()  # its prompt, as Ollama's prompt caches compare it (``prefix``)


@dataclass(frozen=True)
class Grant:
    ticket: str
    placement: Placement
    waited: float
    cached: int | None = 0  # prompt tokens the server is expected to read from its cache (None: a loan's, unknown)


@dataclass
class Loan:
    """Free warm slots of one model on one server, lent to a worker (its ``holder``) while nothing waits."""

    id: str
    holder: str
    server: str
    model: str
    options: dict  # the reload options the model runs with there
    slots: int
    in_use: int = 0
    recalled: bool = False
    stale: bool = False  # the server says the model runs with other options now


@dataclass
class _Running:
    ticket: Ticket
    placement: Placement
    started: float
    charged: float
    loan: str | None = None  # the loan it started on, while that is not returned
    cached: int = 0  # prompt tokens the server is expected to read from its cache


class Scheduler:
    def __init__(self, servers: Iterable[ServerSpec], bounds: Bounds = Bounds(),
                 estimates: Estimates | None = None) -> None:
        self.servers = {spec.name: ServerState(spec) for spec in servers}
        self.bounds = bounds
        self.estimates = estimates or Estimates()
        self.fair = FairShare(bounds.fair_memory, bounds.max_end_users_per_key)
        self.waiting: dict[str, Ticket] = {}
        self.running: dict[str, _Running] = {}
        self.hold_until = 0.0  # no grants before then: a new arbiter first learns what is running
        # model -> when an interactive request, a request with a short prompt, last asked for it
        self.last_interactive: LRUCache[str, float] = LRUCache(MODELS_KEPT)
        self.last_short: LRUCache[str, float] = LRUCache(MODELS_KEPT)
        self.loans: dict[str, Loan] = {}
        # Loan ids differ between arbiters: a worker may still hold requests on the last one's loans.
        self._loan_ids = (f"{uuid.uuid4().hex[:8]}-{n}" for n in itertools.count(1))

    # events

    def submit(self, ticket: Ticket, now: float) -> list[Grant]:
        """Queue ``ticket`` (refused past the bounds) and return the grants that follow; again: nothing."""
        if ticket.id in self.waiting or ticket.id in self.running:
            return []
        self._check_bounds(ticket, now)
        self._activate(ticket, now)
        ticket.enqueued = now
        self.waiting[ticket.id] = ticket
        if class_rank(ticket.share, 0.0, self.bounds.batch_ageing) == 0:
            self.last_interactive[ticket.model] = now
        if ticket.prefix and prompt_tokens(ticket.prefix) < HOLD_TOKENS:
            self.last_short[ticket.model] = now
        return self._dispatch(now)

    def end(self, ticket_id: str, now: float, load_seconds: float | None = None,
            prefill: tuple[int, float] | None = None) -> list[Grant]:
        """A granted request finished (or its client left while it ran): free its slot, hand it on.

        ``prefill``: the prompt tokens Ollama read (not from cache) and the seconds they took, if it said.
        """
        run = self.running.pop(ticket_id, None)
        if run is None:
            return []
        ticket, placement = run.ticket, run.placement
        runner = self.servers[placement.server].runners.get(ticket.model)
        if runner is not None:
            runner.caches.release(ticket_id, now)
        if prefill is not None:
            self.estimates.prefilled(ticket.model, placement.server, *prefill)
        loan = self.loans.get(run.loan) if run.loan is not None else None
        if loan is not None:
            loan.in_use -= 1
        self.servers[placement.server].end(ticket.model, now, to_loan=loan is not None)
        used = now - run.started
        self.estimates.ended(ticket.model, used, now, ticket.share.principal)
        self.fair.finish(ticket.share, run.charged, used)
        self._leave(ticket, now)
        if load_seconds is not None and placement.start is not Start.WARM:
            self.estimates.loaded(ticket.model, placement.server, load_seconds)
        return self._dispatch(now)

    def cancel(self, ticket_id: str, now: float) -> list[Grant]:
        """The client left: drop a waiting request unsent, or end a running one."""
        if ticket_id in self.running:
            return self.end(ticket_id, now)
        if not self._drop_waiting(ticket_id, now):
            return []
        return self._dispatch(now)

    def _drop_waiting(self, ticket_id: str, now: float) -> bool:
        ticket = self.waiting.pop(ticket_id, None)
        if ticket is None:
            return False
        self._leave(ticket, now)
        self._unreserve(ticket_id)
        return True

    def expire(self, now: float) -> list[tuple[str, float]]:
        """Drop the requests that waited longer than ``max_wait``; return their ids, each with its Retry-After.

        The Retry-After is how long the requests still waiting for the same model will likely take to drain.
        """
        late = [t for t in self.waiting.values() if now - t.enqueued >= self.bounds.max_wait]
        for ticket in late:
            del self.waiting[ticket.id]
            self._leave(ticket, now)
            self._unreserve(ticket.id)
        return [(t.id, self.retry_after(t.model, now, sum(1 for w in self.waiting.values() if w.model == t.model)))
                for t in late]

    def adopt(self, ticket: Ticket, placement: Placement, now: float) -> None:
        """Count in a request already running (a worker tells a new arbiter what it holds).

        Whatever it holds: its model's load or eviction is done, so nothing is loaded or evicted
        here; a server this arbiter does not know is one it learns (``learn``) before it is told.
        """
        if ticket.id in self.running or placement.server not in self.servers:
            return
        if ticket.id in self.waiting:  # it was granted and the grant got lost: it runs
            self._drop_waiting(ticket.id, now)
        self._activate(ticket, now)
        ticket.enqueued = now
        self.servers[placement.server].adopt(ticket.model, placement.options, now)
        self._run(ticket, placement, now)

    def resize(self, specs: Iterable[ServerSpec]) -> None:
        """Take new capacities for these servers (an instance's share of them changed); what runs stays counted."""
        for spec in specs:
            state = self.servers.get(spec.name)
            if state is None:
                self.servers[spec.name] = ServerState(spec)
            else:
                state.spec = spec

    def learn(self, specs: Iterable[ServerSpec]) -> None:
        """Take servers that requests name and this arbiter was not built with (another worker's or
        instance's configuration: a reload, or instances sharing Redis); a server known stays as it is."""
        for spec in specs:
            if spec.name not in self.servers:
                self.servers[spec.name] = ServerState(spec)

    def refresh(self, server: str, loaded: dict[str, dict], now: float) -> list[Grant]:
        """Take a server's loaded models (from ``/api/ps``) and hand on what that makes possible."""
        state = self.servers[server]
        state.loaded(loaded)
        for loan in self.loans.values():
            runner = state.runners.get(loan.model)
            if loan.server == server and (runner is None or runner.options != loan.options):
                loan.stale = True
        return self._dispatch(now)

    # loans

    def lend(self, holders: Iterable[str], now: float) -> list[Loan]:
        """Lend each holder what it lacks of its share of every warm runner's slots.

        Nothing is lent while anything waits (or during a hold). A share is the model's
        slots there over one more than the holders, and never the last free one: a
        request that asks finds a slot while one is free; nor one that holds a
        conversation for its next turn, which goes back to it through the scheduler.
        """
        if self.waiting or now < self.hold_until:
            return []
        holders = list(holders)
        have: dict[tuple[str, str, str], int] = {}
        for loan in self.loans.values():
            if not loan.recalled:
                key = (loan.holder, loan.server, loan.model)
                have[key] = have.get(key, 0) + loan.slots
        made = []
        for name, server in self.servers.items():
            due = server.spec.num_parallel // (len(holders) + 1)
            for model, runner in server.runners.items():
                held = sum(1 for slot in runner.caches.slots if slot.ticket is None and self._held(slot, now))
                for holder in holders if due else ():
                    slots = min(due - have.get((holder, name, model), 0), server.free_slots(model) - 1 - held)
                    if slots > 0:
                        loan = Loan(next(self._loan_ids), holder, name, model, dict(runner.options), slots)
                        server.lend(model, slots)
                        self.loans[loan.id] = loan
                        made.append(loan)
        return made

    def recall(self) -> list[Loan]:
        """The loans to call back now: every one while anything waits, and those whose runner changed."""
        called = [loan for loan in self.loans.values()
                  if not loan.recalled and (self.waiting or loan.stale)]
        for loan in called:
            loan.recalled = True
        return called

    def start_on_loan(self, ticket: Ticket, loan_id: str, placement: Placement, now: float) -> None:
        """Count in a request a worker started on a slot of its loan (as ``adopt`` does, where the loan is gone)."""
        loan = self.loans.get(loan_id)
        runner = self.servers[loan.server].runners.get(loan.model) if loan is not None else None
        if runner is None or runner.lent < 1 or ticket.id in self.running:
            self.adopt(ticket, placement, now)
            return
        self._activate(ticket, now)
        ticket.enqueued = now
        loan.in_use += 1
        self.servers[loan.server].on_loan(loan.model, now)
        self._run(ticket, placement, now, loan_id)

    def ran(self, share: Share, model: str, server: str, requests: int, seconds: float, now: float) -> None:
        """Count requests a worker started and ended on lent slots before it told of them: charged, learned from.

        ``seconds``: the slot-time of all ``requests``.
        """
        if requests < 1:
            return
        self.fair.ran(self.fair.admit(share, now), seconds, now)
        self.estimates.ended(model, seconds / requests, now, share.principal, requests)
        runner = self.servers[server].runners.get(model) if server in self.servers else None
        if runner is not None:
            runner.last_used = now

    def returned(self, loan_id: str, now: float) -> list[Grant]:
        """A worker gave a loan back: its unused slots are free, its requests run on as any other."""
        loan = self.loans.pop(loan_id, None)
        if loan is None:
            return []
        self.servers[loan.server].unlend(loan.model, loan.slots - loan.in_use)
        for run in self.running.values():
            if run.loan == loan_id:
                run.loan = None
        return self._dispatch(now)

    def forget(self, holder: str, now: float) -> list[Grant]:
        """A worker is gone: its loans come back (its requests are cancelled by the caller)."""
        grants = []
        for loan in [loan for loan in self.loans.values() if loan.holder == holder]:
            grants += self.returned(loan.id, now)
        return grants

    # queries

    def retry_after(self, model: str, now: float, ahead: int) -> float:
        """Seconds until ``ahead`` requests for ``model`` will likely have drained."""
        rate = self.estimates.drain_rate(model, now)
        if rate <= 0:
            slots = sum(s.spec.num_parallel for s in self.servers.values()) or 1
            rate = slots / self.estimates.slot_seconds(model)
        return max(1.0, math.ceil((ahead + 1) / rate))

    def queue(self, now: float) -> list[Ticket]:
        """The waiting requests in the order they go."""
        return self._in_turn(now)

    def status(self, now: float) -> dict:
        """Describe the servers, who runs where and who waits, as plain data (``snapshot``)."""
        return snapshot(self, now)

    # the decision

    def _check_bounds(self, ticket: Ticket, now: float) -> None:
        if not any(name in self.servers for name in ticket.candidates):
            raise Overloaded(f"no server this scheduler knows may run {ticket.model} "
                             f"({', '.join(ticket.candidates) or 'none named'})")
        mine = sum(1 for t in self.waiting.values() if t.share.principal == ticket.share.principal)
        if mine >= self.bounds.max_queued_per_principal:
            raise RateLimited(f"{mine} requests of yours are already waiting for a slot "
                              "(scheduling.max_queued_per_principal)",
                              retry_after=self.retry_after(ticket.model, now, mine))
        # Each server's queue for the model is bounded; a request waits in the queues of all the servers
        # it may run on, so it is refused only when each of them is full.
        same = min(sum(1 for t in self.waiting.values() if t.model == ticket.model and server in t.candidates)
                   for server in ticket.candidates) if ticket.candidates else 0
        if same >= self.bounds.max_queued_per_model:
            error = Overloaded(f"{same} requests for {ticket.model} are already waiting for a slot on every "
                               "server that may run it (scheduling.max_queued_per_model)")
            error.retry_after = self.retry_after(ticket.model, now, same)
            raise error

    def dispatch(self, now: float) -> list[Grant]:
        """Hand out every grant possible now (after a hold)."""
        return self._dispatch(now)

    def _dispatch(self, now: float) -> list[Grant]:
        if not self.waiting or now < self.hold_until:
            return []
        grants = []
        while (grant := self._next_grant(now)) is not None:
            grants.append(grant)
        return grants

    def _in_turn(self, now: float) -> list[Ticket]:
        ageing = self.bounds.batch_ageing
        return sorted(self.waiting.values(), key=lambda t: (
            class_rank(t.share, now - t.enqueued, ageing), self.fair.rank(t.share), t.enqueued))

    def _next_grant(self, now: float) -> Grant | None:
        turn = self._in_turn(now)
        for position, ticket in enumerate(turn):
            placement = self._place(ticket, turn[:position], now)
            if placement is not None and not self._leaves_too_little(ticket, placement, now):
                return self._begin(*self._yield_to(turn, position, placement, now) or (ticket, placement), now)
        return None

    def _yield_to(self, turn: list[Ticket], position: int, placement: Placement,
                  now: float) -> tuple[Ticket, Placement] | None:
        """A request behind ``turn[position]`` to start in its place on its warm slot, if one should, and how.

        The first one behind, of another principal and for the same model, expected to hold a slot at
        least ``LONGER`` times as long; if it may run on the slot, and the requests it passes are all
        still expected to start within ``yield_within`` seconds of when they first gave way (on the
        slots already free and those expected to free, in turn).
        """
        first = turn[position]
        if not self.bounds.yield_within or placement.start is not Start.WARM:
            return None
        server = self.servers[placement.server]
        longer = LONGER * self._expected(first)
        passed = [first]
        for later in turn[position + 1:]:
            if (later.model != first.model or later.share.principal == first.share.principal
                    or self._expected(later) < longer):
                passed.append(later)
                continue
            fits = server.placement(later.model, later.asked, later.enforced, later.id)
            if (placement.server not in later.candidates or fits is None or fits.start is not Start.WARM
                    or self._overwrites_held(later, self._cache_pick(later, placement.server), now)
                    or self._leaves_too_little(later, fits, now)):
                return None
            if not self._start_in_time([t for t in passed if t.model == first.model], first, now):
                return None
            for ticket in passed:
                if ticket.yielded_at is None:
                    ticket.yielded_at = now
            return later, fits
        return None

    def _start_in_time(self, passed: list[Ticket], first: Ticket, now: float) -> bool:
        """Whether ``passed``, in turn, would all start within ``yield_within`` of giving way, one slot fewer."""
        servers = [self.servers[name] for name in first.candidates if name in self.servers]
        frees = [max(now, r.started + self._expected(r.ticket)) for r in self.running.values()
                 if r.ticket.model == first.model and r.placement.server in first.candidates]
        frees += [now] * (sum(s.free_slots(first.model) for s in servers) - 1)
        heapq.heapify(frees)
        for ticket in passed:
            if not frees:
                return False
            start = heapq.heappop(frees)
            if start - (ticket.yielded_at if ticket.yielded_at is not None else now) > self.bounds.yield_within:
                return False
            heapq.heappush(frees, start + self._expected(ticket))
        return True

    def _expected(self, ticket: Ticket) -> float:
        return self.estimates.slot_seconds(ticket.model, ticket.share.principal)

    def _leaves_too_little(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a batch request would take a slot people using its model may need any moment.

        Strict priority alone still makes a question wait for a batch answer to end whenever batch
        work holds every slot; ``interactive_headroom`` warm slots are left free for as long as
        interactive requests for the model keep coming (``headroom_window``).
        """
        if self._leaves_no_slot_for_short(ticket, placement, now):
            return True
        headroom = self.bounds.interactive_headroom
        if not headroom or class_rank(ticket.share, now - ticket.enqueued, self.bounds.batch_ageing) == 0:
            return False
        if now - self.last_interactive.get(ticket.model, -math.inf) >= self.bounds.headroom_window:
            return False
        if placement.start is not Start.WARM:
            return True
        free = sum(self.servers[name].free_slots(ticket.model) for name in ticket.candidates if name in self.servers)
        return free - 1 < headroom

    def _leaves_no_slot_for_short(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a long prompt would take the last free slot that holds no conversation, while questions come.

        A question then finds that slot and overwrites nothing an agent comes back to, nor waits for one.
        As the interactive headroom, for as long as questions come; never where the candidates have
        fewer than three slots, so long prompts always have two or more.
        """
        if (prompt_tokens(ticket.prefix) < HOLD_TOKENS or placement.start is not Start.WARM
                or now - self.last_short.get(ticket.model, -math.inf) >= self.bounds.headroom_window):
            return False
        servers = [self.servers[name] for name in ticket.candidates if name in self.servers]
        if sum(server.spec.num_parallel for server in servers if ticket.model in server.runners) < 3:
            return False
        pick = self._cache_pick(ticket, placement.server)
        caches = self.servers[placement.server].runners[ticket.model].caches
        if pick is None or self._held(caches.slots[pick.slot], now):
            return False  # it takes a slot held for a conversation (its own): none that questions use
        unheld = 0
        for other in servers:
            runner = other.runners.get(ticket.model)
            if runner is not None:
                held = sum(1 for slot in runner.caches.slots if slot.ticket is None and self._held(slot, now))
                unheld += max(0, other.free_slots(ticket.model) - held)
        return unheld < 2

    def _held(self, slot: CacheSlot, now: float) -> bool:
        """Whether a slot's conversation is held for its next turn: long enough, and back or expected back soon.

        Expected back: within twice the time it last took to come back, and a second (a turn's think
        time; a first turn, ``prefix_hold``); never longer than ``prefix_hold`` after its turn ended.
        """
        if slot.tokens < HOLD_TOKENS or not self.bounds.prefix_hold:
            return False
        expected = self.bounds.prefix_hold if slot.came_back is None else RETURN_MARGIN * slot.came_back + RETURN_SLACK
        return now - slot.ended < min(expected, self.bounds.prefix_hold) or self._back_for(slot)

    def _back_for(self, slot: CacheSlot) -> bool:
        """Whether the conversation a slot holds has come back: a request of its owner's waits that continues it."""
        return self.fair.inside(slot.owner) and any(
            t.share.leaf == slot.owner and t.prefix and shared_tokens(t.prefix, slot.links) == slot.tokens
            for t in self.waiting.values())

    def _place(self, ticket: Ticket, ahead: list[Ticket], now: float) -> Placement | None:
        candidates = [self.servers[name] for name in ticket.candidates if name in self.servers]
        possible = [p for s in candidates if (p := s.placement(ticket.model, ticket.asked, ticket.enforced, ticket.id))]
        picks = {p.server: self._cache_pick(ticket, p.server) for p in possible if p.start is Start.WARM}
        warm = [p for p in possible if p.server in picks and not self._overwrites_held(ticket, picks[p.server], now)]
        if warm:
            return min(warm, key=lambda p: (self._prompt_cost(ticket, p.server, picks[p.server], now),
                                            -self.servers[p.server].free_slots(ticket.model), p.server))
        cold = [p for p in possible if p.start is not Start.WARM]
        if not cold:
            self._reserve_for_reload(ticket, candidates)
            return None
        best = min(cold, key=lambda p: (p.evict is not None, self.estimates.load_seconds(ticket.model, p.server)))
        same_model_ahead = sum(1 for t in ahead if t.model == ticket.model)
        if self._warm_wait(ticket, candidates, same_model_ahead, now) > self.estimates.load_seconds(ticket.model,
                                                                                                  best.server):
            return best
        return None

    def _cache_pick(self, ticket: Ticket, server: str) -> Pick | None:
        """The slot of ``server``'s warm runner Ollama would give ``ticket`` now (None: no prompt, or none free)."""
        if not ticket.prefix:
            return None
        spec = self.servers[server].spec
        return self.servers[server].runners[ticket.model].caches.pick(ticket.prefix, spec.num_parallel,
                                                                      spec.multiuser_cache)

    def _overwrites_held(self, ticket: Ticket, pick: Pick | None, now: float) -> bool:
        """Whether ``ticket`` would overwrite another's conversation held for its next turn, before its wait allows.

        A long prompt may once it has waited ``prefix_hold``; a short one (a question) once it has waited
        ``yield_within``: by then the conversation is mostly back on its slot, and the question finds
        another (long prompts leave it one, ``_leaves_too_little``).
        """
        if self._held_lost(ticket, pick, now) is None:
            return False
        bound = self.bounds.prefix_hold if prompt_tokens(ticket.prefix) >= HOLD_TOKENS else self.bounds.yield_within
        return now - ticket.enqueued < bound

    def _prompt_cost(self, ticket: Ticket, server: str, pick: Pick | None, now: float) -> float:
        """Seconds of prompt reading ``ticket`` costs on ``server``'s warm runner now: its own, and what it overwrites.

        Its own: the part of its prompt no slot there holds. What it overwrites: a conversation the slot
        Ollama would give it holds, if that conversation is held for its next turn (``_held``): it is
        likely to come back, and would be read again.
        """
        if pick is None:
            return 0.0
        tokens = prompt_tokens(ticket.prefix) - pick.shared
        if (lost := self._held_lost(ticket, pick, now)) is not None:
            tokens += lost.tokens
        return self.estimates.prefill_seconds(ticket.model, server, tokens)

    def _held_lost(self, ticket: Ticket, pick: Pick | None, now: float) -> CacheSlot | None:
        """Another's conversation, held for its next turn, that ``ticket`` would overwrite on ``pick``; else None."""
        lost = pick.overwritten if pick is not None else None
        if lost is None or lost.owner == ticket.share.leaf or not self._held(lost, now):
            return None
        return lost

    def _warm_wait(self, ticket: Ticket, candidates: list[ServerState], ahead: int, now: float) -> float:
        """Expected seconds until a warm slot serves ``ticket``, behind ``ahead`` requests for its model."""
        warm = [s for s in candidates if ticket.model in s.runners
                and not unify(s.runners[ticket.model].options, ticket.asked, ticket.enforced)[1]]
        if not warm:
            return math.inf
        slots = sum(s.spec.num_parallel for s in warm)
        expected = self.estimates.slot_seconds(ticket.model)
        names = {s.spec.name for s in warm}
        remaining = sorted(max(0.0, r.started + expected - now) for r in self.running.values()
                           if r.placement.server in names and r.ticket.model == ticket.model)
        remaining += [0.0] * max(0, slots - len(remaining))
        rounds, index = divmod(ahead, slots)
        return remaining[index] + rounds * expected

    def _reserve_for_reload(self, ticket: Ticket, candidates: list[ServerState]) -> None:
        """Hold back new requests on a busy runner that ``ticket`` must reload with larger options."""
        for server in candidates:
            runner = server.runners.get(ticket.model)
            if runner is not None and runner.reserved_by is None and unify(runner.options, ticket.asked,
                                                                           ticket.enforced)[1]:
                runner.reserved_by = ticket.id
                return

    def _unreserve(self, ticket_id: str) -> None:
        for server in self.servers.values():
            for runner in server.runners.values():
                if runner.reserved_by == ticket_id:
                    runner.reserved_by = None

    def _begin(self, ticket: Ticket, placement: Placement, now: float) -> Grant:
        del self.waiting[ticket.id]
        self._unreserve(ticket.id)
        self.servers[placement.server].begin(ticket.model, placement, now)
        self._run(ticket, placement, now)
        return Grant(ticket.id, placement, now - ticket.enqueued, self.running[ticket.id].cached)

    def _run(self, ticket: Ticket, placement: Placement, now: float, loan: str | None = None) -> None:
        """Count ``ticket`` as running, charged its expected slot-time, in the prompt cache Ollama will give it."""
        charged = self._expected(ticket)
        self.fair.start(ticket.share, charged)
        server = self.servers[placement.server]
        runner = server.runners.get(ticket.model)
        cached = 0
        if runner is not None and ticket.prefix:
            cached = runner.caches.take(ticket.id, ticket.share.leaf, ticket.prefix, server.spec.num_parallel, now,
                                        ticket.enqueued, server.spec.multiuser_cache)
        self.running[ticket.id] = _Running(ticket, placement, now, charged, loan, cached)

    def _activate(self, ticket: Ticket, now: float) -> None:
        """Count the ticket in, under its end user's share or, past ``max_end_users_per_key``, its key's."""
        ticket.share = self.fair.admit(ticket.share, now)
        self.fair.enter(ticket.share, now)

    def _leave(self, ticket: Ticket, now: float) -> None:
        """Count the ticket out (it ended, or left the queue unstarted)."""
        self.fair.leave(ticket.share, now)
