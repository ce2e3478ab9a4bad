"""Lend free warm slots to the workers while nothing waits: a layer over the scheduler's order.

While nothing waits, the order has nothing to decide: the scheduler lends each
worker a share of the free warm slots (``lend``), and a worker starts requests
on them without asking, then says so (``start_on_loan``, or ``ran`` for those
that ended before it told). The moment anything waits, every loan is called back
(``recall``); what its worker returns unused (``returned``) is free again. A
lent slot counts as taken, so no server is ever sent more than it runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from ollama_proxy.scheduler.decisions.fairness import INTERACTIVE, Share
from ollama_proxy.scheduler.decisions.placement import QUESTION_TOKENS
from ollama_proxy.scheduler.decisions.servers import Placement
from ollama_proxy.scheduler.decisions.tickets import Grant, Loan, Ticket

LOAN_READ_SECONDS = 0.25  # a prompt read again in less is not worth a round trip to the arbiter


class Lending:
    """The scheduler's loans (mixed into ``core.Scheduler``, whose state and order they use)."""

    def lend(self, holders: Iterable[str], now: float) -> list[Loan]:
        """Lend each holder what it lacks of its share of every warm runner's slots.

        A loan is for interactive requests with short prompts: batch work asks, so that slots stay
        free for people (``interactive_headroom``), and so does a prompt that would take the server
        more than ``LOAN_READ_SECONDS`` to read again, placed where it is cheapest to read.

        Nothing is lent while anything waits (or during a hold). A share is the model's
        slots there over one more than the holders, and never the last free one: a
        request that asks finds a slot while one is free.
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
            for model, runner in server.runners.items():
                due = server.slots_of(model) // (len(holders) + 1)
                for holder in holders if due else ():
                    slots = min(due - have.get((holder, name, model), 0), server.free_slots(model) - 1)
                    if slots > 0:
                        loan = Loan(next(self._loan_ids), holder, name, model, dict(runner.options), slots,
                                    classes=(INTERACTIVE,), prompt_below=self._loan_prompt(model, name))
                        server.lend(model, slots)
                        self.loans[loan.id] = loan
                        made.append(loan)
        return made

    def _loan_prompt(self, model: str, server: str) -> int:
        """The prompts a loan takes: those ``server`` reads in ``LOAN_READ_SECONDS``, questions at most."""
        readable = LOAN_READ_SECONDS / max(self.estimates.prefill_seconds(model, server, 1), 1e-9)
        return max(1, min(QUESTION_TOKENS, int(readable)))

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
        self.order.ran(self.order.admit(share, now), seconds, now)
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
