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
(``giving_way``): a request expected to hold a slot much longer may start first.

Loans of free slots while nothing waits are a layer over it (``lending``), and so
is where a prompt is cheapest to read (``placement``, over what each server's
llama-server holds, ``caches``). What each answer says it read from cache bears
the mirror out or corrects it (``hits``).
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Callable, Iterable

from cachetools import LRUCache

from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.decisions.estimates import MODELS_KEPT, Estimates
from ollama_proxy.scheduler.decisions.fairness import Share, class_rank
from ollama_proxy.scheduler.decisions.giving_way import GivingWay
from ollama_proxy.scheduler.decisions.headroom import Headroom
from ollama_proxy.scheduler.decisions.hits import HitBook
from ollama_proxy.scheduler.decisions.lending import Lending
from ollama_proxy.scheduler.decisions.options import num_ctx_of, unify
from ollama_proxy.scheduler.decisions.order import order_of
from ollama_proxy.scheduler.decisions.pacing import Pacing
from ollama_proxy.scheduler.decisions.placement import QUESTION_TOKENS, PromptPlacement
from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Loaded, Placement, Runner, ServerSlots, ServerSpec, Start
from ollama_proxy.scheduler.decisions.side_by_side import Read
from ollama_proxy.scheduler.decisions.snapshot import snapshot
from ollama_proxy.scheduler.decisions.tickets import Bounds, Grant, Loan, PromptRead, Running, Ticket

_DEFAULT_BOUNDS = Bounds()


class Scheduler(Lending, PromptPlacement, Headroom, GivingWay):
    """The waiting and running requests, the servers' slots, and the order between them (the module says how)."""

    def __init__(self, servers: Iterable[ServerSpec], bounds: Bounds = _DEFAULT_BOUNDS,
                 estimates: Estimates | None = None) -> None:
        self.servers = {spec.name: ServerSlots(spec) for spec in servers}
        self.bounds = bounds
        self.estimates = estimates or Estimates()
        self.hits = HitBook()
        self.pacing = Pacing()
        self.order = order_of(bounds)
        self.waiting: dict[str, Ticket] = {}
        self.running: dict[str, Running] = {}
        self.hold_until = 0.0  # no grants before then: a new arbiter first learns what is running
        # model -> when an interactive request, a request with a short prompt, last asked for it
        self.last_interactive: LRUCache[str, float] = LRUCache(MODELS_KEPT)
        self.last_short: LRUCache[str, float] = LRUCache(MODELS_KEPT)
        self.first_asked: LRUCache[str, float] = LRUCache(MODELS_KEPT)  # model -> when it was first asked for
        self.loans: dict[str, Loan] = {}
        # Requests ended by a later prompt that holds their answer, before their own end came: what they read, when
        # it comes, still bears the mirror out. Bounded: an end that never comes is forgotten in time.
        self.answered: LRUCache[str, Running] = LRUCache(MODELS_KEPT)
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
        self.first_asked.setdefault(ticket.model, now)
        if class_rank(ticket.share, 0.0, self.bounds.batch_ageing) == 0:
            self.last_interactive[ticket.model] = now
            self.pacing.asked(ticket.model, ticket.share.principal, now, self.bounds.headroom_window)
        if ticket.prefix and prompt_tokens(ticket.prefix) < QUESTION_TOKENS:
            self.last_short[ticket.model] = now
        grants = []
        for run in self._answered_in(ticket):  # their end is on its way: their slots are free in Ollama now
            grants += self.end(run.ticket.id, now)
            self.answered[run.ticket.id] = run
        return grants + self._dispatch(now)

    def end(self, ticket_id: str, now: float, load_seconds: float | None = None,
            read: PromptRead | None = None, learn: bool = True) -> list[Grant]:
        """A granted request finished (or its client left while it ran): free its slot, hand it on.

        ``read``: what its answer said of its prompt, if it said. ``learn``: its time tells how long requests take.
        """
        run = self.running.pop(ticket_id, None)
        if run is None:
            answered = self.answered.pop(ticket_id, None)  # ended already: its answer came back in a later prompt
            if answered is not None and read is not None:
                self._confirm(answered, read)
            return []
        ticket, placement = run.ticket, run.placement
        runner = self.servers[placement.server].runners.get(ticket.model)
        if runner is not None:
            runner.caches.release(ticket_id, now)
        if read is not None:
            self._confirm(run, read)
        loan = self.loans.get(run.loan) if run.loan is not None else None
        if loan is not None:
            loan.in_use -= 1
        self.servers[placement.server].end(ticket.model, now, to_loan=loan is not None)
        used = now - run.started
        if learn:
            self.estimates.ended(ticket.model, used, now, ticket.share.principal)
        if read is not None:
            self.estimates.generated(ticket.model, ticket.share.principal, used - read.seconds)
        self.order.finish(ticket.share, run.charged, used)
        self._leave(ticket, now)
        loaded_at = now  # an answer ended: the load it waited for is over
        if load_seconds is not None and placement.start is not Start.WARM:
            self.estimates.loaded(ticket.model, placement.server, load_seconds)
            loaded_at = run.started + load_seconds
        if runner is not None and runner.ready_at > now:
            runner.ready_at = min(runner.ready_at, loaded_at)
        return self._dispatch(now)

    def cancel(self, ticket_id: str, now: float) -> list[Grant]:
        """The client left: drop a waiting request unsent, or end a running one.

        A granted request is cancelled when it was never sent (granted as it gave up, refused at its grant: a hard
        budget spent while it waited) or when its worker is gone: how long it held its slot says nothing of answers.
        """
        if ticket_id in self.running:
            return self.end(ticket_id, now, learn=False)
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
                self.servers[spec.name] = ServerSlots(spec)
            else:
                state.spec = spec

    def learn(self, specs: Iterable[ServerSpec]) -> None:
        """Take servers that requests name and this arbiter was not built with (another worker's or
        instance's configuration: a reload, or instances sharing Redis); a server known stays as it is."""
        for spec in specs:
            if spec.name not in self.servers:
                self.servers[spec.name] = ServerSlots(spec)

    def refresh(self, server: str, loaded: dict[str, Loaded], now: float) -> list[Grant]:
        """Take a server's loaded models (from ``/api/ps``) and hand on what that makes possible."""
        state = self.servers[server]
        state.loaded(loaded)
        for model, runner in state.runners.items():
            self._limit_caches(model, runner)
        for loan in self.loans.values():
            runner = state.runners.get(loan.model)
            if loan.server == server and (runner is None or runner.options != loan.options):
                loan.stale = True
        return self._dispatch(now)

    # queries

    def retry_after(self, model: str, now: float, ahead: int) -> float:
        """Seconds until ``ahead`` requests for ``model`` will likely have drained."""
        rate = self.estimates.drain_rate(model, now)
        if rate <= 0:
            slots = sum(s.slots_of(model) for s in self.servers.values()) or 1
            rate = slots / self.estimates.slot_seconds(model)
        return max(1.0, math.ceil((ahead + 1) / rate))

    def queue(self, now: float) -> list[Ticket]:
        """The waiting requests in the order they go."""
        return self._in_turn(now)

    def status(self, now: float) -> dict:
        """Describe the servers, who runs where and who waits, as plain data (``snapshot``)."""
        return snapshot(self.servers, self.running.values(), self.queue(now), self.hits.report(), now)

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
        same = self._queued_for(ticket.model, ticket.candidates)
        # A key, the person who owns it and its team may each fill their part of each queue, no more: one key's
        # flood, or one person's or team's through several keys, leaves room for the others.
        for whose, holder in _holders(ticket.share):
            ours = self._queued_for(ticket.model, ticket.candidates, holder)
            if ours >= self.bounds.principal_part_of_queue:
                raise RateLimited(
                    f"{ours} requests of {whose} for {ticket.model} are already waiting for a slot, the part of its "
                    "queue one key, person or team may hold (scheduling.max_queued_share of "
                    "scheduling.max_queued_per_model)", retry_after=self.retry_after(ticket.model, now, ours))
        if same >= self.bounds.max_queued_per_model:
            error = Overloaded(f"{same} requests for {ticket.model} are already waiting for a slot on every "
                               "server that may run it (scheduling.max_queued_per_model)")
            error.retry_after = self.retry_after(ticket.model, now, same)
            raise error

    def _queued_for(self, model: str, candidates: tuple[str, ...],
                    holder: Callable[[Share], bool] | None = None) -> int:
        """The requests (of whom ``holder`` says, or anyone's) waiting for ``model`` in the shortest of its queues."""
        return min(sum(1 for t in self.waiting.values() if t.model == model and server in t.candidates
                       and (holder is None or holder(t.share))) for server in candidates) if candidates else 0

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
        return sorted(self.waiting.values(), key=lambda t: (self.order.turn(t.share, now - t.enqueued), t.enqueued))

    def _next_grant(self, now: float) -> Grant | None:
        turn = self._in_turn(now)
        for position, ticket in enumerate(turn):
            placement = self._within_headroom(ticket, self._place(ticket, turn[:position], now), now)
            if placement is not None:
                return self._begin(*self._yield_to(turn, position, placement, now) or (ticket, placement), now)
        return None

    def _expected(self, ticket: Ticket) -> float:
        return self.estimates.slot_seconds(ticket.model, ticket.share.principal)

    def _place(self, ticket: Ticket, ahead: list[Ticket], now: float) -> Placement | None:
        candidates = [self.servers[name] for name in ticket.candidates if name in self.servers]
        possible = [p for s in candidates if (p := s.placement(ticket.model, ticket.asked, ticket.enforced, ticket.id))]
        warm = [p for p in possible if p.start is Start.WARM]
        if warm:
            best, cost, pick = self._cheapest(ticket, warm, now)
            return None if ticket.prefix and self._worth_waiting(ticket, best, cost, ahead, now, pick) else best
        cold = [p for p in possible if p.start is not Start.WARM]
        if not cold:
            self._reserve_for_reload(ticket, candidates)
            return None
        if now - self.first_asked.get(ticket.model, now) < self.bounds.load_gather and all(
                server.listed and ticket.model not in server.runners for server in candidates):
            return None  # the requests that came with it may ask larger options: one load takes the largest
        best = min(cold, key=lambda p: (p.evict is not None, self.estimates.load_seconds(ticket.model, p.server)))
        same_model_ahead = sum(1 for t in ahead if t.model == ticket.model)
        if self._warm_wait(ticket, candidates, same_model_ahead, now) > self.estimates.load_seconds(ticket.model,
                                                                                                  best.server):
            return best
        return None

    def _warm_wait(self, ticket: Ticket, candidates: list[ServerSlots], ahead: int, now: float) -> float:
        """Expected seconds until a warm slot serves ``ticket``, behind ``ahead`` requests for its model."""
        warm = [s for s in candidates if ticket.model in s.runners
                and not unify(s.runners[ticket.model].options, ticket.asked, ticket.enforced)[1]]
        if not warm:
            return math.inf
        slots = sum(s.slots_of(ticket.model) for s in warm)
        expected = self.estimates.slot_seconds(ticket.model)
        names = {s.spec.name for s in warm}
        remaining = sorted(abs(self._ends_at(r) - now) for r in self.running.values()
                           if r.placement.server in names and r.ticket.model == ticket.model)
        remaining += [0.0] * max(0, slots - len(remaining))
        rounds, index = divmod(ahead, slots)
        return remaining[index] + rounds * expected

    def _ends_at(self, run: Running) -> float:
        """When ``run`` is expected to free its slot: its expected hold, from the end of the load it waits for.

        ``abs(ends_at - now)`` is what it still holds: past its expected end, the estimate was short (a long stream
        of a principal none of whose answers has ended yet), and it is expected to run on as long as it overran.
        """
        runner = self.servers[run.placement.server].runners.get(run.ticket.model)
        return max(run.started, runner.ready_at if runner is not None else -math.inf) + run.expected

    def _reserve_for_reload(self, ticket: Ticket, candidates: list[ServerSlots]) -> None:
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
        self.servers[placement.server].begin(ticket.model, placement, now, ticket.embeds,
                                             self.estimates.load_seconds(ticket.model, placement.server))
        self.pacing.started(ticket.model, ticket.share.principal, now)
        self._run(ticket, placement, now)
        return Grant(ticket.id, placement, now - ticket.enqueued)

    def _run(self, ticket: Ticket, placement: Placement, now: float, loan: str | None = None) -> None:
        """Count ``ticket`` as running, charged its expected slot-time, in the slot llama-server will give it."""
        charged = self._expected(ticket)
        self.order.start(ticket.share, charged)
        runner = self.servers[placement.server].runners.get(ticket.model)
        if runner is not None:
            self._limit_caches(ticket.model, runner)
        cached = (runner.caches.take(ticket.id, ticket.prefix, now, ticket.share.shown, self._tenant(ticket),
                                     ticket.enqueued)
                  if runner is not None else 0)
        ticket.waits_for = None
        expected = self._expected_run(ticket, placement.server, cached, now) if ticket.prefix else charged
        self.running[ticket.id] = Running(ticket, placement, now, charged, loan, cached, expected)
        if runner is not None and ticket.prefix:
            unread = (prompt_tokens(ticket.prefix) - cached) * self.estimates.scale(ticket.model)
            runner.reads.append(Read(ticket.id, now, round(unread)))

    def _limit_caches(self, model: str, runner: Runner) -> None:
        """Tell ``runner``'s caches the most a slot holds: the context it runs with, in the proxy's estimated tokens."""
        context = num_ctx_of(runner.options)
        runner.caches.limit(None if context is None else context / self.estimates.scale(model))

    def _activate(self, ticket: Ticket, now: float) -> None:
        """Count the ticket in, under its end user's share or, past ``max_end_users_per_key``, its key's."""
        ticket.share = self.order.admit(ticket.share, now)
        self.order.enter(ticket.share, now)

    def _leave(self, ticket: Ticket, now: float) -> None:
        """Count the ticket out (it ended, or left the queue unstarted)."""
        self.order.leave(ticket.share, now)


def _holders(share: Share) -> list[tuple[str, Callable[[Share], bool]]]:
    """Who a request's place in a queue counts against, as named in a refusal: its key, its owner, its team."""
    holders = [("yours", lambda other: other.principal == share.principal)]
    if share.owner is not None:
        holders.append((f"person '{share.owner}'", lambda other: other.owner == share.owner))
    if share.team is not None:
        holders.append(("your team", lambda other: other.team == share.team))
    return holders
