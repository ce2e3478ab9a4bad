"""Serve one instance's scheduler to all its workers over a Unix socket.

One worker holds the decisions (``Scheduler``) and every worker, that one
included, talks to it over a socket: a request waits in its worker for a grant
message, and a freed slot is handed on by a message, never polled for. A
worker that dies drops its connection, and with it its waiting requests and
its slots. Decisions are pure calls that never yield to another greenlet, so
one process's greenlets need no lock around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
from gevent.queue import Queue
from gevent.server import StreamServer

from ollama_proxy.errors import ProxyError
from ollama_proxy.scheduler import wire
from ollama_proxy.scheduler.core import Grant, Scheduler
from ollama_proxy.scheduler.servers import Placement, Start

log = logging.getLogger(__name__)
EXPIRY_INTERVAL = 0.25  # seconds between checks for requests past scheduling.max_wait
# A new arbiter grants nothing for this long, while the workers reconnect and say which slots they hold.
TAKEOVER_HOLD = 0.5


class _Worker:
    """One worker's connection: its tickets, and one writer so that lines never interleave."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.tickets: set[str] = set()
        self.outbox: Queue = Queue()
        self.writer = gevent.spawn(self._write)

    def send(self, message: dict) -> None:
        self.outbox.put(wire.encode(message))

    def _write(self) -> None:
        for data in self.outbox:
            try:
                self.sock.sendall(data)
            except OSError:
                return


class Arbiter:
    def __init__(self, scheduler: Scheduler, clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._owners: dict[str, _Worker] = {}
        self._workers: set[_Worker] = set()
        self._server: StreamServer | None = None
        self._expiry = None

    def serve(self, listener, hold: float = TAKEOVER_HOLD) -> None:
        """Accept workers on ``listener`` (a bound, listening socket) in greenlets."""
        self.scheduler.hold_until = self.clock() + hold
        self._server = StreamServer(listener, self._serve_worker)
        self._server.start()
        self._expiry = gevent.spawn(self._expire_forever, hold)

    def stop(self) -> None:
        """Stop serving and drop every worker's connection (they reconnect to the next arbiter)."""
        if self._expiry is not None:
            self._expiry.kill()
        if self._server is not None:
            self._server.close()
        for worker in list(self._workers):
            worker.sock.shutdown(2)

    def _serve_worker(self, sock, _address) -> None:
        worker = _Worker(sock)
        self._workers.add(worker)
        try:
            for line in sock.makefile("rb"):
                self._handle(worker, wire.decode(line))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("a worker's scheduler connection failed: %s", exc)
        finally:
            now = self.clock()
            for ticket_id in list(worker.tickets):
                self._owners.pop(ticket_id, None)
                self._deliver(self.scheduler.cancel(ticket_id, now))
            self._workers.discard(worker)
            worker.outbox.put(StopIteration)
            sock.close()

    def _handle(self, worker: _Worker, message: dict) -> None:
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

    def _submit(self, worker: _Worker, message: dict, now: float) -> None:
        ticket = wire.ticket_of(message)
        self._own(worker, ticket.id)
        try:
            grants = self.scheduler.submit(ticket, now)
        except ProxyError as error:
            self._disown(ticket.id)
            worker.send(wire.refused(ticket.id, error))
            return
        self._deliver(grants)

    def _own(self, worker: _Worker, ticket_id: str) -> None:
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

    def _expire_forever(self, hold: float) -> None:
        gevent.sleep(hold)
        self._deliver(self.scheduler.dispatch(self.clock()))
        while True:
            gevent.sleep(EXPIRY_INTERVAL)
            for ticket_id in self.scheduler.expire(self.clock()):
                worker = self._owners.pop(ticket_id, None)
                if worker is not None:
                    worker.tickets.discard(ticket_id)
                    worker.send({"op": "expired", "id": ticket_id})
