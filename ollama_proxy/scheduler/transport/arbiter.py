"""Make the scheduler's decisions for every worker that asks, whatever carries the messages.

One arbiter holds the decisions (``Scheduler``); every worker, the arbiter's
own included, sends it messages and gets grants back. A request waits in its
worker for a grant message, and a freed slot is handed on by a message, never
polled for. A worker that is gone takes its waiting requests and its slots with
it. Decisions are pure calls that never yield to another greenlet, so one
process's greenlets need no lock around them. How messages travel (a Unix
socket in one instance, Redis between instances) is the transport's job.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import gevent

from ollama_proxy.errors import Overloaded, ProxyError
from ollama_proxy.scheduler.decisions.core import Grant, Scheduler, Ticket
from ollama_proxy.scheduler.transport import wire

log = logging.getLogger(__name__)
EXPIRY_INTERVAL = 0.25  # seconds between checks for requests past scheduling.max_wait, or past a hold


class Worker(Protocol):
    """Where the arbiter's answers to one worker go."""

    tickets: set[str]

    def send(self, message: dict) -> None:
        """Queue ``message`` for the worker; never yield (a decision must not), raise OSError if the line is gone."""


class Arbiter:
    def __init__(self, scheduler: Scheduler, clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._owners: dict[str, Worker] = {}
        self._holders: dict[str, Worker] = {}  # the workers that borrow slots, by holder name
        self._holder_names = (str(n) for n in itertools.count(1))
        self._ticker = None
        self._reader = None
        self.stopped = False
        self._expected: set = set()  # the workers a new arbiter waits to hear from before it grants (their peer)
        self._heard_from: set = set()  # the workers that said all they hold to this arbiter (their peer)

    def start(self, hold: float, loaded: Callable[[], dict[str, dict[str, dict]]] | None = None,
              every: float = 10.0) -> None:
        """Grant nothing for ``hold`` seconds (the workers say what they already hold), then tick.

        ``loaded()`` returns what each server has loaded (model -> reload options), read
        from the servers themselves; it is taken now and every ``every`` seconds.
        """
        self.scheduler.hold_until = self.clock() + hold
        self._ticker = gevent.spawn(self._tick_forever)
        if loaded is not None:
            self._reader = gevent.spawn(self._read_loaded_forever, loaded, every)

    def expect(self, workers: set) -> None:
        """Grant nothing, within the hold, until each of ``workers`` (their ``peer``) has said all it holds."""
        self._expected = set(workers) - self._heard_from
        now = self.clock()
        if not self._expected and now < self.scheduler.hold_until:
            self.scheduler.hold_until = now
            self._deliver(self.scheduler.dispatch(now))

    def holding(self) -> bool:
        """Whether this arbiter still grants nothing (its hold)."""
        return self.clock() < self.scheduler.hold_until

    def stop(self) -> None:
        """Decide no more: its greenlets end, and a message sent by a call is refused (``InProcessLink``)."""
        self.stopped = True
        for greenlet in (self._ticker, self._reader):
            if greenlet is not None:
                greenlet.kill(block=False)

    def _read_loaded_forever(self, loaded: Callable[[], dict[str, dict[str, dict]]], every: float) -> None:
        while True:
            try:
                for server, models in loaded().items():
                    self._deliver(self.scheduler.refresh(server, models, self.clock()))
                self._settle()
            except Exception:  # a failed read must not stop the next ones
                log.exception("reading the servers' loaded models failed")
            gevent.sleep(every)

    def handle(self, worker: Worker, message: dict) -> None:
        """Act on one message; one that is not what it says is dropped and logged, never its worker's line."""
        try:
            self._handle(worker, message)
        except wire.BadMessage as exc:
            log.warning("dropped a scheduler message: %s", exc)
        except Exception:  # a fault of the arbiter's own: the next messages are still heard
            log.exception("the scheduler failed on a %s message", message.get("op"))
            if message.get("op") == "submit" and isinstance(message.get("id"), str):
                self._disown(message["id"])
                _send(worker, wire.refused(message["id"], Overloaded("the scheduler failed on this request")))

    def _handle(self, worker: Worker, message: dict) -> None:
        now, op, ticket_id = self.clock(), message["op"], message["id"]
        frees = op not in ("start", "status")  # whether it may leave a slot free to lend
        if op == "submit":
            self.scheduler.learn(wire.specs_of(message))
            self._submit(worker, message, now)
        elif op == "sync":
            self._sync(worker, message, now)
        elif op in ("end", "cancel"):
            self._disown(ticket_id)
            run = self.scheduler.running.get(ticket_id)
            frees = run is None or run.loan is None  # a lent slot goes back to its loan
            if op == "end":
                loaded = message.get("load_seconds")
                self._deliver(self.scheduler.end(ticket_id, now, loaded if isinstance(loaded, (int, float)) else None,
                                                 wire.read_of(message)))
            else:
                self._deliver(self.scheduler.cancel(ticket_id, now))
        elif op == "running":  # a worker of before ``sync`` telling a new arbiter what it holds
            self.scheduler.learn(wire.specs_of(message))
            self._own(worker, ticket_id)
            self.scheduler.adopt(wire.ticket_of(message), wire.placement_of(message), now)
        elif op == "start":
            ticket, placement = wire.ticket_of(message), wire.placement_of(message)
            self.scheduler.learn(wire.specs_of(message))
            self._own(worker, ticket.id)
            self.scheduler.start_on_loan(ticket, str(message.get("loan", "")), placement, now)
        elif op == "ran":
            self.scheduler.ran(*wire.ran_of(message), now)
            return  # it changed no slot: nothing to call back or lend
        elif op == "returned":
            self._deliver(self.scheduler.returned(str(message.get("loan", "")), now))
        elif op == "join":
            self._holders[next(self._holder_names)] = worker
        elif op == "status":
            _send(worker, wire.status(ticket_id, self.scheduler.status(now)))
        else:
            raise wire.BadMessage(f"an unknown op {op!r}")
        self._settle(lend=frees)

    def _sync(self, worker: Worker, message: dict, now: float) -> None:
        """Make what this arbiter holds for ``worker`` what the worker says it holds and waits for.

        Tickets of the worker's that it no longer names ended or left while it could not say so;
        those it names are counted in as running, or queued, unless they already are.
        """
        running = [(wire.ticket_of(m), wire.placement_of(m), wire.specs_of(m)) for m in message.get("running") or ()]
        waiting = [(wire.ticket_of(m), wire.specs_of(m)) for m in message.get("waiting") or ()]
        named = {ticket.id for ticket, *_ in running} | {ticket.id for ticket, _ in waiting}
        for ticket_id in [t for t in worker.tickets if t not in named]:
            self._disown(ticket_id)
            self._deliver(self.scheduler.cancel(ticket_id, now))
        for ticket, placement, specs in running:
            self.scheduler.learn(specs)
            self._own(worker, ticket.id)
            self.scheduler.adopt(ticket, placement, now)
        for ticket, specs in waiting:
            self.scheduler.learn(specs)
            run = self.scheduler.running.get(ticket.id)
            if run is not None:  # granted while its grant could not reach the worker: said again
                self._own(worker, ticket.id)
                _send(worker, wire.grant(self._estimated(Grant(ticket.id, run.placement, now - run.started))))
            elif ticket.id not in self.scheduler.waiting:
                self._submit_ticket(worker, ticket, now)
        self._heard(worker, now)

    def _heard(self, worker: Worker, now: float) -> None:
        """A worker said all it holds: once every one expected has, the hold ends and what waits is granted."""
        peer = getattr(worker, "peer", None)
        self._heard_from.add(peer)
        if not self._expected:
            return
        self._expected.discard(peer)
        if not self._expected and now < self.scheduler.hold_until:
            self.scheduler.hold_until = now
            self._deliver(self.scheduler.dispatch(now))

    def gone(self, worker: Worker) -> None:
        """A worker is gone: drop what it waits for, free what it holds, take back what it borrowed."""
        now = self.clock()
        for holder in [name for name, held in self._holders.items() if held is worker]:
            del self._holders[holder]
            self._deliver(self.scheduler.forget(holder, now))
        for ticket_id in list(worker.tickets):
            self._owners.pop(ticket_id, None)
            self._deliver(self.scheduler.cancel(ticket_id, now))
        worker.tickets.clear()
        self._settle()

    def _settle(self, lend: bool = True) -> None:
        """Call back the loans that must come back (something waits), and lend (nothing does)."""
        for loan in self.scheduler.recall():
            self._tell(loan.holder, {"op": "recall", "id": "", "loan": loan.id})
        for loan in self.scheduler.lend(self._holders, self.clock()) if lend else ():
            self._tell(loan.holder, wire.lend(loan))

    def _tell(self, holder: str, message: dict) -> None:
        worker = self._holders.get(holder)
        if worker is not None:
            _send(worker, message)

    def _submit(self, worker: Worker, message: dict, now: float) -> None:
        self._submit_ticket(worker, wire.ticket_of(message), now)

    def _submit_ticket(self, worker: Worker, ticket: Ticket, now: float) -> None:
        self._own(worker, ticket.id)
        try:
            grants = self.scheduler.submit(ticket, now)
        except ProxyError as error:
            self._disown(ticket.id)
            _send(worker, wire.refused(ticket.id, error))
            return
        self._deliver(grants)

    def _own(self, worker: Worker, ticket_id: str) -> None:
        before = self._owners.get(ticket_id)
        if before is not None and before is not worker:  # told again on a worker's new line
            before.tickets.discard(ticket_id)
        self._owners[ticket_id] = worker
        worker.tickets.add(ticket_id)

    def _disown(self, ticket_id: str) -> None:
        worker = self._owners.pop(ticket_id, None)
        if worker is not None:
            worker.tickets.discard(ticket_id)

    def _deliver(self, grants: list[Grant]) -> None:
        for granted in grants:
            worker = self._owners.get(granted.ticket)
            if worker is not None:
                _send(worker, wire.grant(self._estimated(granted)))

    def _estimated(self, granted: Grant) -> Grant:
        """The grant with the prompt tokens the mirror expects its server to read from cache, in Ollama's tokens
        (``predicted_cached``); unchanged for a request without a prompt the mirror follows."""
        run = self.scheduler.running.get(granted.ticket)
        if run is None or not run.ticket.prefix:
            return granted
        return replace(granted, cached=self.scheduler.predicted_cached(run))

    def _tick_forever(self) -> None:
        while self.holding():  # a hold may end early: every worker expected said what it holds
            gevent.sleep(min(EXPIRY_INTERVAL, self.scheduler.hold_until - self.clock()))
        self._deliver(self.scheduler.dispatch(self.clock()))
        self._settle()
        while True:
            gevent.sleep(EXPIRY_INTERVAL)
            expired = self.scheduler.expire(self.clock())
            for ticket_id, retry_after in expired:
                worker = self._owners.pop(ticket_id, None)
                if worker is not None:
                    worker.tickets.discard(ticket_id)
                    _send(worker, {"op": "expired", "id": ticket_id, "retry_after": retry_after})
            if self.scheduler.waiting:  # a bound a waiting request was held by (a hold, a yield) may have run out
                self._deliver(self.scheduler.dispatch(self.clock()))
            if expired or self.scheduler.waiting:
                self._settle()


def _send(worker: Worker, message: dict) -> None:
    try:
        worker.send(message)
    except OSError:  # its line is closing: ``gone`` frees what it holds
        pass
