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
        self._reader = None

    def start(self, hold: float, loaded: Callable[[], dict[str, dict[str, dict]]] | None = None,
              every: float = 10.0) -> None:
        """Grant nothing for ``hold`` seconds (the workers say what they already hold), then tick.

        ``loaded()`` returns what each server has loaded (model -> reload options), read
        from the servers themselves; it is taken now and every ``every`` seconds.
        """
        self.scheduler.hold_until = self.clock() + hold
        self._ticker = gevent.spawn(self._tick_forever, hold)
        if loaded is not None:
            self._reader = gevent.spawn(self._read_loaded_forever, loaded, every)

    def stop(self) -> None:
        for greenlet in (self._ticker, self._reader):
            if greenlet is not None:
                greenlet.kill()

    def _read_loaded_forever(self, loaded: Callable[[], dict[str, dict[str, dict]]], every: float) -> None:
        while True:
            try:
                for server, models in loaded().items():
                    self._deliver(self.scheduler.refresh(server, models, self.clock()))
            except Exception:  # a failed read must not stop the next ones
                log.exception("reading the servers' loaded models failed")
            gevent.sleep(every)

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
        elif op == "status":
            worker.send(wire.status(ticket_id, self.scheduler.status(now)))

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
            for ticket_id, retry_after in self.scheduler.expire(self.clock()):
                worker = self._owners.pop(ticket_id, None)
                if worker is not None:
                    worker.tickets.discard(ticket_id)
                    worker.send({"op": "expired", "id": ticket_id, "retry_after": retry_after})
