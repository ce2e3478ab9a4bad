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

import logging
import time
from collections.abc import Callable
from typing import Protocol

import gevent

from ollama_proxy.errors import ProxyError
from ollama_proxy.scheduler import wire
from ollama_proxy.scheduler.core import Grant, Scheduler
from ollama_proxy.scheduler.servers import Placement, Start

log = logging.getLogger(__name__)
EXPIRY_INTERVAL = 0.25  # seconds between checks for requests past scheduling.max_wait


class Worker(Protocol):
    """Where the arbiter's answers to one worker go."""

    tickets: set[str]

    def send(self, message: dict) -> None: ...


class Arbiter:
    def __init__(self, scheduler: Scheduler, clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._owners: dict[str, Worker] = {}
        self._ticker = None

    def start(self, hold: float) -> None:
        """Grant nothing for ``hold`` seconds (the workers say what they already hold), then tick."""
        self.scheduler.hold_until = self.clock() + hold
        self._ticker = gevent.spawn(self._tick_forever, hold)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.kill()

    def handle(self, worker: Worker, message: dict) -> None:
        now, op, ticket_id = self.clock(), message["op"], message["id"]
        if op == "submit":
            self._submit(worker, message, now)
        elif op == "running":
            self._own(worker, ticket_id)
            placement = Placement(message["server"], Start(message["start"]), message["options"], message["evict"])
            self.scheduler.adopt(wire.ticket_of(message), placement, now)
        elif op in ("end", "cancel"):
            self._disown(ticket_id)
            if op == "end":
                self._deliver(self.scheduler.end(ticket_id, now, message.get("load_seconds")))
            else:
                self._deliver(self.scheduler.cancel(ticket_id, now))

    def gone(self, worker: Worker) -> None:
        """A worker is gone: drop what it waits for, free what it holds."""
        now = self.clock()
        for ticket_id in list(worker.tickets):
            self._owners.pop(ticket_id, None)
            self._deliver(self.scheduler.cancel(ticket_id, now))
        worker.tickets.clear()

    def _submit(self, worker: Worker, message: dict, now: float) -> None:
        ticket = wire.ticket_of(message)
        self._own(worker, ticket.id)
        try:
            grants = self.scheduler.submit(ticket, now)
        except ProxyError as error:
            self._disown(ticket.id)
            worker.send(wire.refused(ticket.id, error))
            return
        self._deliver(grants)

    def _own(self, worker: Worker, ticket_id: str) -> None:
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
                worker.send(wire.grant(granted))

    def _tick_forever(self, hold: float) -> None:
        gevent.sleep(hold)
        self._deliver(self.scheduler.dispatch(self.clock()))
        while True:
            gevent.sleep(EXPIRY_INTERVAL)
            for ticket_id in self.scheduler.expire(self.clock()):
                worker = self._owners.pop(ticket_id, None)
                if worker is not None:
                    worker.tickets.discard(ticket_id)
                    worker.send({"op": "expired", "id": ticket_id})
