"""Lease each worker a share of a budget, so that far from its end a budgeted key's requests skip the store.

Reading what its budgets spent as a request arrives, and adding its charge as it
ends, costs a budgeted request two statements. Far from a budget's end neither
is needed for each request: a worker leases a share of what is left, admits
requests against it in memory, and adds what they spent as the lease ends
(``budgets.lease_seconds`` after it began, or sooner, once used up), in the
same transaction that gives it its next lease (``Store.renew_leases``).

- A lease is ``LEASE_SHARE`` of what no worker has spent or leased, given only
  while that share is at least ``LEAST_REQUESTS`` of the worker's typical charge
  to the budget. So near its end a budget is leased to no one: each request
  reads and charges it as before, and counts every lease still held as spent.
- A lease counts as spent for every other worker and instance until it expires:
  no two admit against the same room, and a hard budget is still overshot only
  by the requests running as it ran out.
- A request is admitted against leases only if every budget holding it is
  leased and not used up. A budget changed meanwhile (its amount, its mode) or
  its holder made again is another: a lease of the old one admits nothing of it.
- A worker that stops adds what it holds before it goes. One killed loses the
  charges of its last lease (at most ``lease_seconds`` of them); its leases
  lapse ``lease_seconds`` after they would have ended.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from ollama_proxy.store import Budget, DatabaseError, ValueRefused
from ollama_proxy.store.budgets import Standing
from ollama_proxy.store.errors import MayHaveLanded, short_reason

log = logging.getLogger(__name__)
LEASE_SHARE = 1 / 16  # of what is left unleased: a few dozen workers together lease a fraction of it
LEAST_REQUESTS = 8  # a lease smaller than this many typical charges saves too few statements to be worth its own
TYPICAL_WEIGHT = 0.2  # how much a new charge moves a budget's typical charge (a moving average)


def lease_size(amount: float, spent: float, leased: float, typical: float | None) -> float:
    """What a worker may lease of a budget of ``amount`` that ``spent`` and others hold ``leased`` of: 0 for none.

    ``typical``: the worker's typical charge to it; None (no charge seen yet) leases nothing."""
    size = (amount - spent - leased) * LEASE_SHARE
    return size if typical is not None and size > 0 and size >= LEAST_REQUESTS * typical else 0.0


class _Lease:
    __slots__ = ("budget", "left", "spent", "others")

    def __init__(self, budget: Budget, left: float, spent: float, others: float):
        self.budget = budget
        self.left = left  # what the worker may still admit requests against
        self.spent = spent  # the budget's spend as leased, with what this worker's requests spent since
        self.others = others  # what other workers held leased then


class Leases:
    """One worker's leases, the charges of the requests it admitted on them, and the greenlet that renews them."""

    def __init__(self, seconds: float, store: Callable, on_lost: Callable[[int], None], clock=time.monotonic):
        self.seconds = seconds  # 0: none is ever leased
        self._store = store  # a callable returning the Store
        self._on_lost = on_lost  # called with the number of requests whose charges the store did not take
        self._clock = clock
        self._held: dict[tuple, _Lease] = {}  # (slot, period start) -> its lease
        self._ends = float("-inf")  # when the leases held end (the clock's)
        self._used: set[tuple] = set()  # (slot, period start) charged against since the last renewal
        self._wanted: dict[tuple, None] = {}  # (budget, period start) a request found unleased
        self._not_before: dict[tuple, float] = {}  # (budget, period start) -> when to ask for it again
        self._pending: list[tuple[list, dict]] = []  # (charges, ids) of the requests admitted on leases
        self._typical: dict[tuple, float] = {}  # slot -> the worker's typical charge to it
        self._renewing = threading.Lock()  # one renewal at a time
        self._lock = threading.Lock()  # the charges held and the leases, as a renewal swaps them
        self._wake = threading.Event()
        self._started_in: int | None = None  # the pid whose greenlet renews: a fork needs its own
        self._lessee = ""

    def standings(self, periods: list[tuple[Budget, datetime, datetime]]) -> list[Standing] | None:
        """The standings of ``periods`` (budget, start, end) as leased, if every one is leased and not used up;
        else None, and those not leased are wanted (leased once the request's charge landed: ``ask``)."""
        if self._clock() < self._ends:
            leases = [self._held.get((budget.slot, start)) for budget, start, _ in periods]
            if all(lease is not None and lease.left > 0 and lease.budget == budget
                   for lease, (budget, _, _) in zip(leases, periods, strict=True)):
                return [Standing(budget, start, end, lease.spent, 0, lease.others)
                        for lease, (budget, start, end) in zip(leases, periods, strict=True)]
        if self.seconds > 0 and not self._renewing.locked():
            now = self._clock()
            asked = [(budget, start) for budget, start, _ in periods if self._not_before.get((budget, start), 0) <= now]
            self._wanted.update(dict.fromkeys(asked))
        return None

    def ask(self) -> None:
        """Lease what requests wanted: called as a request that read its spend ends, so that the lease counts its
        charge (what a lease must be worth is learnt from it too)."""
        if self._wanted:
            self._start()
            self._wake.set()

    def learn(self, charges: list[tuple[tuple, datetime, float]]) -> None:
        """Learn how much a request typically charges each budget (what a lease must be worth)."""
        for slot, _, amount in charges:
            typical = self._typical.get(slot)
            self._typical[slot] = amount if typical is None else typical + TYPICAL_WEIGHT * (amount - typical)

    def charge(self, charges: list[tuple[tuple, datetime, float]], ids: dict) -> None:
        """Hold a leased request's charges to add as the lease ends; ask for a new lease once one is used up.

        A request that outlived its lease (given back as it ended) has its charges added at once."""
        if not charges:
            return
        land_now = self._clock() >= self._ends
        with self._lock:
            self._pending.append((charges, ids))
            for slot, start, amount in charges:
                self._used.add((slot, start))
                lease = self._held.get((slot, start))
                if lease is None:
                    land_now = True
                else:
                    lease.left -= amount
                    lease.spent += amount
                    land_now = land_now or lease.left <= 0
        if land_now:
            self._start()
            self._wake.set()

    def renew(self, again: bool = True) -> bool:
        """Add the charges held, give back the leases held, and lease again those used (``again``) and asked for.

        Return whether the store took it; if not, the charges stay held for the next try."""
        with self._renewing:
            ended = self._clock()
            with self._lock:
                self._ends = float("-inf")  # nothing is admitted on a lease while its room is given back
                pending, self._pending = self._pending, []
                wanted = {**{(lease.budget, key[1]): None for key, lease in self._held.items() if key in self._used},
                          **self._wanted} if again else {}
                self._held, self._used, self._wanted = {}, set(), {}
            self._not_before = {key: moment for key, moment in self._not_before.items() if moment > ended}
            now = datetime.now(timezone.utc)
            until = now + timedelta(seconds=self.seconds + max(1.0, self.seconds))  # then a dead worker's lapse
            try:
                found = self._store().renew_leases(self._lessee or self._name(), pending, list(wanted), self._size,
                                                   now, until)
            except (MayHaveLanded, ValueRefused) as exc:  # sent again, they could be charged twice, or never taken
                self._on_lost(len(pending))
                log.error("budgets: %d requests' charges not added: %s", len(pending), exc.reason)
                return False
            except Exception as exc:  # the store failed (or worse): nothing landed, so the charges wait for the next
                with self._lock:
                    self._pending[:0] = pending
                for key in wanted:
                    self._not_before[key] = ended + self.seconds
                log.error("budgets: the leases cannot be renewed (%d requests' charges wait): %s", len(pending),
                          exc.reason if isinstance(exc, DatabaseError) else short_reason(exc))
                return False
            held = {(budget.slot, start): _Lease(budget, granted, spent, others)
                    for (budget, start), (spent, others, granted)
                    in ((key, found[(key[0].slot, key[1])]) for key in wanted) if granted > 0}
            for key in wanted:
                if (key[0].slot, key[1]) not in held:
                    self._not_before[key] = ended + self.seconds
            with self._lock:
                self._held = held
                self._ends = self._clock() + self.seconds if held else float("-inf")
            return True

    def close(self) -> None:
        """Add the charges held and give back every lease: the worker's last act."""
        if (self._pending or self._held) and not self.renew(again=False) and self._pending:
            self._on_lost(len(self._pending))
            log.error("budgets: %d requests' charges not added as the worker stopped", len(self._pending))
            self._pending = []

    def _size(self, budget: Budget, spent: float, leased: float) -> float:
        return lease_size(budget.amount, spent, leased, self._typical.get(budget.slot))

    def _name(self) -> str:
        self._lessee = f"{socket.gethostname()[:48]}:{os.getpid()}:{secrets.token_hex(4)}"
        return self._lessee

    def _start(self) -> None:
        if self._started_in == os.getpid():
            return
        self._started_in = os.getpid()
        self._lessee = ""
        threading.Thread(target=self._run, name="budget-leases", daemon=True).start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            if self._held:
                self._wake.wait(max(0.0, self._ends - self._clock()))
            else:  # charges a failed renewal left are tried again a lease's time later
                self._wake.wait(self.seconds if self._pending else None)
            self._wake.clear()
            if not (self._held or self._pending or self._wanted):
                continue
            try:
                self.renew()
            except Exception:  # the greenlet outlives any one failure: the charges held wait for the next renewal
                log.exception("budgets: renewing the leases failed")
