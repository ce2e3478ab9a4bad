"""Ask the instance's arbiter for a slot, from inside a worker.

Every greenlet of a worker shares one connection. ``admit`` sends the ticket
and waits for its grant; the arbiter answers when a slot is this request's,
however long that takes (bounded by ``scheduling.max_wait``). If the arbiter's
worker dies, another worker becomes the arbiter: this client connects to it,
tells it the slots this worker holds, and submits again what was waiting.
``status`` asks the arbiter what it holds, on a line of its own.

While nothing waits, the arbiter lends a worker that borrows some free warm
slots: a request that fits one starts on it at once, without a round trip, and
the arbiter is told after: that it started, once it has run ``REPORT_AFTER``, or,
if it ended before, that it ran, with the others of its principal and model that
ran meanwhile, in one message. A recalled loan is given back at once, after every
start not yet told; its requests run on and end as any other.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from ollama_proxy.errors import Overloaded
from ollama_proxy.scheduler import wire
from ollama_proxy.scheduler.core import Grant, Ticket
from ollama_proxy.scheduler.fairness import BATCH
from ollama_proxy.scheduler.options import unify
from ollama_proxy.scheduler.servers import Placement, Start

log = logging.getLogger(__name__)
RECONNECT_DELAY = 0.05  # seconds between tries while a new arbiter takes over
# A free slot is granted within this: no greenlet is spent watching the client of a request that never waits.
PROMPT_GRANT = 0.005
# A request on a lent slot is told to the arbiter once it has run this long (seconds); one that ended sooner is
# told then too, added up with the others of its principal and model: one message, and one piece of the
# arbiter's bookkeeping, for all of them, in place of a start and an end each.
REPORT_AFTER = 0.05


class Link(Protocol):
    """A worker's line to the arbiter; broken links raise OSError, and their messages end."""

    def send(self, message: dict) -> None: ...

    def messages(self) -> Iterator[dict]: ...

    def close(self) -> None: ...


class ClientLeft(Exception):
    """The client hung up while its request waited: it was dropped, never sent."""


@dataclass
class _Loan:
    """Slots the arbiter lent this worker: requests for ``model`` start on ``server`` without asking."""

    id: str
    server: str
    model: str
    options: dict
    slots: int
    used: int = 0


class SchedulerClient:
    def __init__(self, connect: Callable[[Callable[[dict], None]], Link], max_wait: float,
                 ask: Callable[[Callable[[dict], None]], Link] | None = None, borrow: bool = False) -> None:
        """``connect(receive)`` opens the line to the arbiter (one that carries no messages calls ``receive``);
        ``ask(receive)`` a line for one question; with ``borrow``, this worker takes the slots the arbiter lends."""
        self._connect = connect
        self._ask = ask or connect  # a line for one question: the shared one carries grants
        self._max_wait = max_wait
        self._borrow = borrow
        self._link: Link | None = None
        self._connecting = Semaphore()
        self._waiting: dict[str, tuple[Ticket, AsyncResult]] = {}
        self._running: dict[str, tuple[Ticket, Grant]] = {}
        self._loans: dict[str, _Loan] = {}
        self._on_loan: dict[str, str] = {}  # ticket -> the loan it runs on
        self._untold: dict[str, float] = {}  # ticket -> when it started on a loan, until the arbiter is told
        self._ran: dict[tuple[str, str, str], list] = {}  # (principal, model, server) -> [share, requests, seconds]
        self._teller = None  # the greenlet that tells the arbiter of those after REPORT_AFTER

    def admit(self, ticket: Ticket, watch: Callable[[Callable[[], None]], Callable[[], None]] | None = None) -> Grant:
        """Wait for ``ticket``'s grant; raise the arbiter's refusal, a timeout, or ClientLeft.

        ``watch(on_gone)`` starts watching the client and returns the function that
        stops it: a client that leaves while waiting cancels its ticket at once.
        """
        granted = self._start_on_loan(ticket)
        if granted is not None:
            return granted
        result = AsyncResult()
        self._waiting[ticket.id] = (ticket, result)
        stop_watching = None
        try:
            self._send(wire.submit(ticket))
            message = result.get(timeout=PROMPT_GRANT)
        except gevent.Timeout:  # it waits: watch the client from now on
            stop_watching = watch(lambda: result.set({"op": "left"})) if watch else None
            try:
                message = result.get(timeout=self._max_wait + 1.0)
            except gevent.Timeout:
                message = {"op": "expired"}
        finally:
            if stop_watching is not None:
                stop_watching()
            self._waiting.pop(ticket.id, None)
        if message["op"] == "grant":
            granted = wire.grant_of(message)
            self._running[ticket.id] = (ticket, granted)
            return granted
        if message["op"] != "refused":
            self._send({"op": "cancel", "id": ticket.id})
        if message["op"] == "left":
            raise ClientLeft(ticket.id)
        if message["op"] == "refused":
            raise wire.error_of(message)
        error = Overloaded(f"no slot came free for {ticket.model} within {self._max_wait:g}s (scheduling.max_wait)")
        # The arbiter's estimate from the drain rate; its own when the arbiter never answered.
        error.retry_after = message.get("retry_after", self._max_wait)
        raise error

    def end(self, ticket_id: str, load_seconds: float | None = None) -> None:
        """Give a granted slot back (the answer ended, failed, or its client left)."""
        running = self._running.pop(ticket_id, None)
        if running is None:
            return
        loan_id = self._on_loan.pop(ticket_id, "")
        loan = self._loans.get(loan_id)
        if loan is not None:
            loan.used -= 1
        started = self._untold.pop(ticket_id, None)
        if started is None:
            self._send({"op": "end", "id": ticket_id, "load_seconds": load_seconds})
            return
        ticket, granted = running  # it ran before the arbiter heard of it: told with the others, soon
        seconds = time.monotonic() - started
        key = (ticket.share.principal, ticket.model, granted.placement.server)
        ran = self._ran.get(key)
        if ran is None:
            self._ran[key] = [ticket.share, 1, seconds]
        else:
            ran[1] += 1
            ran[2] += seconds

    def _give_back(self, loan_id: str) -> None:
        try:
            self._tell_starts()  # first: the arbiter frees the loan's slots that no request holds
            self._send({"op": "returned", "id": "", "loan": loan_id})
        except Overloaded:  # no arbiter to give it to: the next one never lent it
            pass

    def _tell_starts(self) -> None:
        """Tell the arbiter of every request started on a loan that it has not heard of yet."""
        untold, self._untold = self._untold, {}
        for ticket_id in untold:
            running = self._running.get(ticket_id)  # it may have ended while a new line was opened
            if running is not None:
                ticket, granted = running
                self._send(wire.start(ticket, self._on_loan.get(ticket_id, ""), granted.placement))

    def _ran_reports(self) -> list[dict]:
        """The messages that tell of the requests that ran on loans since the arbiter was last told."""
        ran, self._ran = self._ran, {}
        return [wire.ran(share, model, server, requests, seconds)
                for (_, model, server), (share, requests, seconds) in ran.items()]

    def _tell_starts_later(self) -> None:
        self._teller = None
        try:
            for report in self._ran_reports():
                self._send(report)
            self._tell_starts()
        except Overloaded:  # the next arbiter hears of them as running, when this worker reconnects
            pass

    def _start_on_loan(self, ticket: Ticket) -> Grant | None:
        """Start ``ticket`` on a lent slot that fits it (the one with most left), told of later; None if none.

        Batch work always asks: the arbiter keeps slots free for people (``interactive_headroom``).
        """
        if not self._loans or ticket.share.klass == BATCH:
            return None
        best, options = None, {}
        for loan in self._loans.values():
            if (loan.model == ticket.model and loan.server in ticket.candidates and loan.used < loan.slots
                    and (best is None or loan.slots - loan.used > best.slots - best.used)):
                unified, reload = unify(loan.options, ticket.asked, ticket.enforced)
                if not reload:
                    best, options = loan, unified
        if best is None:
            return None
        granted = Grant(ticket.id, Placement(best.server, Start.WARM, options), 0.0)
        best.used += 1
        self._running[ticket.id] = (ticket, granted)
        self._on_loan[ticket.id] = best.id
        self._untold[ticket.id] = time.monotonic()
        if self._teller is None:
            self._teller = gevent.spawn_later(REPORT_AFTER, self._tell_starts_later)
        return granted

    def status(self, timeout: float) -> dict | None:
        """Return the arbiter's state (``snapshot``), or None if it did not answer within ``timeout`` seconds."""
        question = uuid.uuid4().hex
        answer = AsyncResult()

        def receive(message: dict) -> None:
            if message.get("id") == question:
                answer.set(message["status"])
        link = None
        try:
            with gevent.Timeout(timeout, False):
                link = self._question_link(receive)
                link.send({"op": "status", "id": question})
                for message in () if answer.ready() else link.messages():
                    receive(message)
                    if answer.ready():
                        break
        except (OSError, ValueError, KeyError) as exc:
            log.warning("the scheduler did not answer a status question: %s", exc)
        finally:
            if link is not None:
                link.close()
        return answer.value if answer.ready() else None

    def _question_link(self, receive: Callable[[dict], None]) -> Link:
        while True:  # while a new arbiter takes over; the caller's timeout ends it
            try:
                return self._ask(receive)
            except OSError:
                gevent.sleep(RECONNECT_DELAY)

    def _send(self, message: dict) -> None:
        for _ in range(2):
            link = self._link or self._connection()  # the lock only while there is no line
            try:
                link.send(message)
                return
            except OSError:
                self._lost(link)
        raise Overloaded("the proxy's scheduler cannot be reached")

    def _connection(self) -> Link:
        with self._connecting:
            while self._link is None:
                try:
                    link = self._connect(self.receive)
                    if self._borrow:
                        link.send({"op": "join", "id": ""})
                    self._reannounce(link)
                except OSError:
                    gevent.sleep(RECONNECT_DELAY)
                    continue
                self._link = link
                gevent.spawn(self._read, link)
            return self._link

    def _reannounce(self, link: Link) -> None:
        """Tell a (new) arbiter the slots this worker holds and the tickets still waiting."""
        self._untold.clear()  # told now, as running
        for ticket, granted in list(self._running.values()):
            placement = granted.placement
            link.send({**wire.submit(ticket), "op": "running", "server": placement.server,
                       "start": placement.start.value, "options": placement.options, "evict": placement.evict})
        for report in self._ran_reports():
            link.send(report)
        for ticket, _ in list(self._waiting.values()):
            link.send(wire.submit(ticket))

    def receive(self, message: dict) -> None:
        """Hand the arbiter's answer to the request waiting for it (if it still waits); take or give back a loan."""
        op = message["op"]
        if op == "lend":
            self._loans[message["loan"]] = _Loan(message["loan"], message["server"], message["model"],
                                                 message["options"], message["slots"])
        elif op == "recall":
            if self._loans.pop(message["loan"], None) is not None:
                # Not from here: the arbiter of this very worker may be sending this, in the middle of a decision.
                gevent.spawn(self._give_back, message["loan"])
        elif (waiting := self._waiting.get(message["id"])) is not None:
            waiting[1].set(message)

    def _read(self, link: Link) -> None:
        try:
            for message in link.messages():
                self.receive(message)
        except (OSError, ValueError) as exc:
            log.warning("the scheduler connection failed: %s", exc)
        self._lost(link)
        if self._waiting or self._running:
            gevent.spawn(self._connection)  # resubmit what waits; the arbiter's successor counts our slots

    def _lost(self, link: Link) -> None:
        if self._link is link:
            self._link = None
            self._loans.clear()  # they were the lost arbiter's; the next one counts their requests as running
            self._on_loan.clear()
            self._untold.clear()
        try:
            link.close()
        except OSError:
            pass

