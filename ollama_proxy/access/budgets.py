"""Hold teams and keys to their budgets: refuse, flag or count a request once a budget is spent; charge it at its end.

Before a request reaches a GPU (after auth and the rate limits), the budgets of
its key and of the key's team are read, with what each has spent in its current
period. A spent **hard** budget refuses the request: 429 in the surface's own
shape, ``Retry-After`` the seconds until the period resets, the message naming
the budget. A spent **soft** one serves it with ``X-Budget-Exceeded: <team or
key> <period>`` and a warning in the log; a spent **shadow** one serves it
unmarked and counts what it would have refused (``budget_spend.refusals``, the
metric ``ollama_proxy_budget_refusals_total{mode}``). Every answer to a budgeted
key carries ``X-Budget-Remaining: <left>; period=<period>; unit=<unit>`` for the
budget with the least share left.

A request that waited for its slot is checked again at its grant
(``check_at_grant``): one whose hard budget was spent while it waited is refused
then, unsent, and its slot goes to the next.

When the response closes, the request's tokens (prompt and answer) and, on an
Ollama server, its GPU-seconds (``total_duration``) are added to every budget it
was checked against, in the period it started in (``store.budgets``). Requests
that read their spend, or add their charge, at the same moment in one worker do
so in one statement (``access.together``); each waits for its own. A
request already running when a budget runs out finishes: a budget is overshot by
what was running, never by what started after.

A key's or team's budget holds that key or team by its id (``Principal.key_id``,
``team_id``), not by its name: a request of a deleted key (its principal still
cached by a worker) is not held to, nor charged to, the budget of a new key of
the name, and neither is one that ends after the key was made again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request

from ollama_proxy import ledger
from ollama_proxy.access.leases import Leases
from ollama_proxy.access.together import Together
from ollama_proxy.config import BudgetSettings
from ollama_proxy.errors import ProxyError, RateLimited
from ollama_proxy.greenlets import let_others_run
from ollama_proxy.ledger import RequestRecord, access_record, current_record
from ollama_proxy.store import Budget, DatabaseError, current_store
from ollama_proxy.store.budgets import Standing, period_bounds, standings_in

log = logging.getLogger(__name__)
EXTENSION = "ollama_proxy.access.budgets"
ROUTER_EXTENSION = "ollama_proxy.router"  # routing.routes.ROUTER: its providers' answers are no GPU time here


class Budgets:
    """The budgets every worker reads (kept ``cache_seconds``), and the checks and charges made with them."""

    def __init__(self, settings: BudgetSettings, store, clock=time.monotonic, pause=let_others_run,
                 on_lost: Callable[[int], None] = lambda count: None):
        self.zone = ZoneInfo(settings.timezone)
        self._on_lost = on_lost  # called with the number of requests whose charges the store did not take
        self.leases = Leases(settings.lease_seconds, store, on_lost, clock)
        self._cache_seconds = settings.cache_seconds
        self._store = store  # a callable returning the Store: opened on first use
        self._clock = clock
        self._budgets: list[Budget] | None = None  # None: not read yet
        self._read_at = float("-inf")
        self._warned: set[tuple] = set()  # (slot, period start) a soft budget was said spent for, by this worker
        self._periods: dict[str, tuple[datetime, datetime]] = {}  # the current one of each kind of period
        # The requests that read their spend, or add their charge, at the same moment do so in one statement.
        self._read = Together(self._read_spent, pause)
        self._add = Together(self._add_charges, pause, interrupted=lambda: DatabaseError(
            "a charge's writer was stopped as it wrote", "its worker stopped as the charge was written"))

    def of(self, principal) -> list[Budget]:
        """The budgets that hold ``principal``: its key's, its team's, and its owner's (a person's)."""
        if self._clock() - self._read_at >= self._cache_seconds:
            # Marked fresh only once read: a greenlet that comes while another reads reads too, never the old list.
            try:
                self._budgets = self._store().list_budgets()
            except DatabaseError as exc:
                if self._budgets is None and principal.key_id is not None:  # never read: a managed key may be held
                    log.error("budgets: the store cannot be read, and was never read: %s", exc.reason)
                    raise _cannot_check() from None
                # Those read last hold (a token of the file is never held: it works on).
                log.error("budgets: the store cannot be read; holding the %d budgets read before: %s",
                          len(self._budgets or ()), exc.reason)
            if self._budgets is not None:
                self._read_at = self._clock()
        holders = {("key", principal.name): principal.key_id, ("team", principal.team): principal.team_id,
                   ("person", principal.owner): None}
        return [b for b in self._budgets or () if (b.holder_kind, b.holder) in holders
                and b.holder_id == holders[(b.holder_kind, b.holder)]]

    def standings(self, budgets: list[Budget], now: datetime) -> tuple[list[Standing], bool]:
        """The standings of ``budgets`` at ``now``, and whether they are the worker's leases (no store read)."""
        periods = [(budget, *self._period(budget.period, now)) for budget in budgets]
        leased = self.leases.standings(periods)
        if leased is not None:
            return leased, True
        return standings_in(periods, self._read([(budget.slot, start) for budget, start, _ in periods])), False

    def _period(self, period: str, now: datetime) -> tuple[datetime, datetime]:
        """The start and end of the ``period`` (day, week, month) holding ``now``: worked out as one begins."""
        bounds = self._periods.get(period)
        if bounds is None or not bounds[0] <= now < bounds[1]:
            bounds = self._periods[period] = period_bounds(period, now, self.zone)
        return bounds

    def _read_spent(self, asked: list[list[tuple]]) -> list[dict]:
        spent = self._store().spent([slot for slots in asked for slot in slots])
        return [{slot: spent[slot] for slot in slots} for slots in asked]

    def _add_charges(self, requests: list[tuple[list, dict]]) -> list[None]:
        self._store().charge_together(requests)
        return [None] * len(requests)

    def charge(self, record: RequestRecord, providers) -> None:
        """Add a finished request's spending to the budgets it was checked against (a close listener)."""
        if not record.budgeted:
            return
        tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        gpu = 0.0 if record.backend in providers else (record.gpu_seconds or 0.0)
        charges = [(slot, start, tokens if slot[3] == "tokens" else gpu) for slot, start in record.budgeted]
        ids = {("key", record.principal): record.key_id, ("team", record.team): record.team_id}
        self.leases.learn(charges)
        charged = [c for c in charges if c[2] > 0]
        if record.budget_leased:
            self.leases.charge(charged, ids)
            return
        try:
            if charged:
                self._add((charged, ids))
        except DatabaseError as exc:
            self._on_lost(1)
            log.error("budgets: request %s's spending (%d tokens, %.1f GPU-seconds) not charged: %s",
                      record.request_id, tokens, gpu, exc.reason)
        self.leases.ask()

    def count_refusal(self, standing: Standing, request_id: str) -> None:
        """Record a request a shadow budget would have refused; it is served."""
        log.info("budget: %s's shadow %s budget would have refused request %s", standing.budget.named,
                 standing.budget.period, request_id)
        try:
            self._store().note_refusal(standing.budget.slot, standing.start)
        except DatabaseError as exc:
            log.error("budgets: a shadow refusal of request %s not recorded: %s", request_id, exc.reason)

    def warn_once(self, standing: Standing) -> None:
        mark = (standing.budget.slot, standing.start)
        if mark not in self._warned:
            self._warned.add(mark)
            log.warning("budget: %s spent its soft %s budget of %g %s (it resets %s)", standing.budget.named,
                        standing.budget.period, standing.budget.amount, standing.budget.unit, standing.end.isoformat())


def _standings(budgets: Budgets, held: list[Budget], now: datetime) -> tuple[list[Standing], bool]:
    try:
        return budgets.standings(held, now)
    except DatabaseError as exc:
        log.error("budgets: what was spent cannot be read: %s", exc.reason)
        raise _cannot_check() from None


def _cannot_check() -> ProxyError:
    return ProxyError("the budgets cannot be checked now (the store cannot be reached); try again shortly",
                      status=503)


def _refuse_if_hard_spent(standings: list[Standing], record: RequestRecord, now: datetime) -> None:
    """Raise the 429 of a spent hard budget among ``standings``, if one is."""
    hard = [s for s in standings if s.spent_out and s.budget.mode == "hard"]
    if hard:
        binding = max(hard, key=lambda s: s.end)  # the request is refused until every spent one resets
        record.over_budget, record.budgeted = ("hard",), ()  # refused: nothing to charge
        raise RateLimited(f"{binding.budget.named} spent its {binding.budget.period}'s budget of "
                          f"{binding.budget.amount:g} {binding.budget.unit.replace('_', '-')}; it resets at "
                          f"{binding.end.isoformat()}", retry_after=max(1.0, (binding.end - now).total_seconds()),
                          code="budget_exceeded")


def check_budgets() -> None:
    """Refuse, flag or count the request of a principal whose budget is spent (before the view runs)."""
    record = access_record(request.environ)
    principal = None if record is None else record.caller
    if principal is None:
        return
    budgets: Budgets = current_app.extensions[EXTENSION]
    held = budgets.of(principal)
    if not held:
        return
    now = datetime.now(timezone.utc)
    standings, record.budget_leased = _standings(budgets, held, now)
    record.budgeted = tuple((s.budget.slot, s.start) for s in standings)
    record.budget_remaining = min(standings, key=lambda s: s.share_left).header()
    spent_out = [s for s in standings if s.spent_out]
    record.over_budget = tuple(sorted({s.budget.mode for s in spent_out}))
    for standing in (s for s in spent_out if s.budget.mode == "shadow"):
        budgets.count_refusal(standing, record.request_id)
    _refuse_if_hard_spent(standings, record, now)
    soft = [s for s in spent_out if s.budget.mode == "soft"]
    if soft:
        record.budget_exceeded = ", ".join(f"{s.budget.holder} {s.budget.period}" for s in soft)
        for standing in soft:
            budgets.warn_once(standing)


def check_at_grant() -> Callable[[], None] | None:
    """Return what the current request checks again when granted a slot it waited for; None if nothing holds it.

    The check raises the 429 of a hard budget spent while the request waited (its
    slot then goes to the next); it is made from any greenlet, outside the request's context.
    """
    record = access_record(request.environ)
    principal = None if record is None else record.caller
    budgets: Budgets | None = current_app.extensions.get(EXTENSION)
    if principal is None or budgets is None or not record.budgeted:
        return None

    def check() -> None:
        held = budgets.of(principal)
        if any(b.mode == "hard" for b in held):
            now = datetime.now(timezone.utc)
            standings, leased = _standings(budgets, held, now)
            record.budget_leased = record.budget_leased and leased
            record.budget_remaining = min(standings, key=lambda s: s.share_left).header()
            _refuse_if_hard_spent(standings, record, now)
    return check


def add_headers(response):
    """Tell a budgeted key what is left of its tightest budget, and which soft budgets it has spent."""
    record = current_record()
    if record is not None and record.budget_remaining is not None:
        response.headers["X-Budget-Remaining"] = record.budget_remaining
    if record is not None and record.budget_exceeded is not None:
        response.headers["X-Budget-Exceeded"] = record.budget_exceeded
    return response


def init_app(app: Flask) -> None:
    """Hold budgets after auth and the rate limits; charge them as responses close."""
    budgets = app.extensions[EXTENSION] = Budgets(app.config["SETTINGS"].budgets, lambda: current_store(app),
                                                  on_lost=lambda count: _count_lost(app, count))
    app.before_request(check_budgets)
    app.after_request(add_headers)
    ledger.add_close_listener(app, lambda record: budgets.charge(record, app.extensions[ROUTER_EXTENSION].providers))


def _count_lost(app: Flask, count: int) -> None:
    proxy_metrics = app.extensions.get("ollama_proxy.observability.metrics")  # there when metrics.enabled
    if proxy_metrics is not None:
        proxy_metrics.budget_charges_lost.inc(count)
