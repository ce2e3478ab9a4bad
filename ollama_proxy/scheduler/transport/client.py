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
from collections.abc import Callable, Iterable

import gevent

from ollama_proxy.errors import Overloaded
from ollama_proxy.scheduler.decisions.options import unify
from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Placement, ServerSpec, Start
from ollama_proxy.scheduler.decisions.tickets import Grant, Loan, PromptRead, Ticket
from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.questions import RECONNECT_DELAY, Reply, ask_status
from ollama_proxy.scheduler.transport.wire import Link

log = logging.getLogger(__name__)
# A new arbiter takes office the moment the last one's worker is gone, and grants nothing for half a second
# while the workers say what they hold: they try often at first, then ever less often, up to RECONNECT_MAX.
RECONNECT_QUICKLY = 1.0
RECONNECT_MAX = 0.5  # the longest wait between two tries
# A free slot is granted within this: no greenlet is spent watching the client of a request that never waits.
PROMPT_GRANT = 0.005
# A request on a lent slot is told to the arbiter once it has run this long (seconds); one that ended sooner is
# told then too, added up with the others of its principal and model: one message, and one piece of the
# arbiter's bookkeeping, for all of them, in place of a start and an end each.
REPORT_AFTER = 0.05


class ClientLeft(Exception):
    """The client hung up while its request waited: it was dropped, never sent."""


class SchedulerClient:
    """One worker's side of the scheduler: its requests' tickets, its loans, its line to the arbiter."""

    def __init__(self, connect: Callable[[Callable[[dict], None]], Link], max_wait: float,
                 ask: Callable[[Callable[[dict], None]], Link] | None = None, borrow: bool = False, *,
                 specs: Iterable[ServerSpec] = (), accept: Callable[[Ticket, dict], bool] | None = None,
                 unreachable_timeout: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 reply: Callable[[], Reply] | None = None, report_after: float = REPORT_AFTER) -> None:
        """``connect(receive)`` opens the line to the arbiter (one that carries no messages calls ``receive``);
        ``ask(receive)`` a line for one question; with ``borrow``, this worker takes the slots the arbiter lends.

        ``specs`` are this worker's scheduled servers, told with each ticket; ``accept(ticket, grant)`` takes a grant
        for good where the transport fences its arbiters' terms (False: a deposed arbiter's, dropped);
        ``unreachable_timeout`` bounds the wait while no arbiter can be reached; ``clock`` tells the time (seconds);
        ``reply()`` makes what a waiting request waits on (``Reply``: a gevent event), as APF's queues take theirs;
        ``report_after``: how long a request on a loan runs before the arbiter is told it started (``REPORT_AFTER``).
        """
        self._connect = connect
        self._ask = ask or connect  # a line for one question: the shared one carries grants
        self._max_wait = max_wait
        self._borrow = borrow
        self._specs = {spec.name: spec for spec in specs}
        self._accept = accept or (lambda ticket, grant: True)
        self._at_once = accept is None  # nothing fences a grant: it is taken as it arrives (``_take_grant``)
        self._unreachable_timeout = unreachable_timeout
        self._clock = clock
        self._reply = reply or Reply
        self._report_after = report_after
        self._link: Link | None = None
        self._connector = None  # the greenlet that opens the line, while there is none
        self._unreachable_since: float | None = None
        self._waiting: dict[str, tuple[Ticket, Reply]] = {}
        self._running: dict[str, tuple[Ticket, Grant]] = {}
        self._loans: dict[str, Loan] = {}
        self._on_loan: dict[str, str] = {}  # ticket -> the loan it runs on
        # ticket -> when it started on a loan (on ``clock``, and on the timers' clock), until the arbiter is told
        self._untold: dict[str, tuple[float, float]] = {}
        self._ran: dict[tuple, list] = {}  # (share leaf, model, server) -> [share, requests, seconds]
        self._teller = None  # the greenlet that tells the arbiter of those after REPORT_AFTER

    def join(self) -> None:
        """Open the line now (a worker starting): a new arbiter then hears from every worker, not only busy ones."""
        self._connecting()

    def admit(self, ticket: Ticket, watch: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
              deadline: float | None = None) -> Grant:
        """Wait for ``ticket``'s grant until ``deadline`` (on the ``clock``; default: ``max_wait`` from now);
        raise the arbiter's refusal, a timeout, or ClientLeft.

        ``watch(on_gone)`` starts watching the client and returns the function that
        stops it: a client that leaves while waiting cancels its ticket at once.
        The wait is bounded whatever the arbiter does: none may be reachable at all.
        """
        granted = self._start_on_loan(ticket)
        if granted is not None:
            return granted
        now = self._clock()
        if self._unreachable_since is not None and now - self._unreachable_since >= self._unreachable_timeout:
            raise self._unreachable()
        message = self._answer(ticket, watch, now + self._max_wait + 1.0 if deadline is None else deadline)
        if message["op"] != "grant":
            raise self._refusal(ticket, message)
        granted = self._running[ticket.id][1] if ticket.id in self._running else wire.grant_of(message)
        self._running[ticket.id] = (ticket, granted)
        return granted

    def _answer(self, ticket: Ticket, watch, until: float) -> dict:
        """Submit ``ticket`` and wait for the word that settles it: a grant taken, a refusal, the client gone, or
        ``expired`` at ``until``. The client is watched once the grant did not come at once."""
        reply = self._reply()
        self._waiting[ticket.id] = (ticket, reply)
        stop_watching = None
        try:
            self._post(wire.submit(ticket, self.specs_of(ticket)))
            message = reply.wait(min(PROMPT_GRANT, until - self._clock()))
            if message is None:  # it waits: watch the client from now on
                stop_watching = watch(lambda: self._tell_waiting(ticket.id, {"op": "left"})) if watch else None
            while message is None or message["op"] == "grant":
                if message is not None:
                    if ticket.id in self._running:  # taken as it arrived
                        return message
                    self._waiting[ticket.id] = (ticket, reply := self._reply())  # what comes meanwhile is kept
                    if self._accept(ticket, message):
                        return message
                message = reply.wait(until - self._clock()) or {"op": "expired"}
            return message
        finally:
            if stop_watching is not None:
                stop_watching()
            self._waiting.pop(ticket.id, None)

    def _refusal(self, ticket: Ticket, message: dict) -> Exception:
        """What a ticket not granted raises, by the word that settled it; a grant that came as it gave up ends."""
        op = message["op"]
        self._running.pop(ticket.id, None)  # granted just as it gave up: the cancel below ends it
        if op != "refused":
            self._post({"op": "cancel", "id": ticket.id})
        if op == "left":
            return ClientLeft(ticket.id)
        if op == "refused":
            return wire.error_of(message)
        if op == "unreachable":
            return self._unreachable()
        error = Overloaded(f"no slot came free for {ticket.model} within {self._max_wait:g}s (scheduling.max_wait)")
        # The arbiter's estimate from the drain rate; its own when the arbiter never answered.
        error.retry_after = message.get("retry_after", self._max_wait)
        return error

    def _unreachable(self) -> Overloaded:
        error = Overloaded(f"the proxy's scheduler could not be reached for {self._unreachable_timeout:g}s "
                           "(scheduling.unreachable_timeout)")
        error.retry_after = self._unreachable_timeout
        return error

    def specs_of(self, ticket: Ticket) -> list[ServerSpec]:
        """The servers ``ticket`` may run on, with their capacity as this worker's configuration says."""
        return [self._specs[name] for name in ticket.candidates if name in self._specs]

    def _tell_waiting(self, ticket_id: str, message: dict) -> None:
        """Hand ``message`` to the request waiting for it, if it still waits: the first word it gets stands."""
        waiting = self._waiting.get(ticket_id)
        if waiting is not None and not waiting[1].ready():
            waiting[1].set(message)

    def end(self, ticket_id: str, load_seconds: float | None = None, read: PromptRead | None = None,
            sent: bool = True) -> None:
        """Give a granted slot back (the answer ended, failed, or its client left; or, not ``sent``, it was refused
        at its grant)."""
        running = self._running.pop(ticket_id, None)
        if running is None:
            return
        loan_id = self._on_loan.pop(ticket_id, "")
        loan = self._loans.get(loan_id)
        if loan is not None:
            loan.in_use -= 1
        untold = self._untold.pop(ticket_id, None)
        if untold is None:
            self._post(wire.end(ticket_id, load_seconds, read) if sent else {"op": "cancel", "id": ticket_id})
            return
        if not sent:  # the arbiter never heard of it, and nothing ran
            return
        ticket, granted = running  # it ran before the arbiter heard of it: told with the others, soon
        seconds = self._clock() - untold[0]
        key = (ticket.share.leaf, ticket.model, granted.placement.server)
        ran = self._ran.get(key)
        if ran is None:
            self._ran[key] = [ticket.share, 1, seconds]
        else:
            ran[1] += 1
            ran[2] += seconds

    def _give_back(self, loan_id: str) -> None:
        self._tell_starts()  # first: the arbiter frees the loan's slots that no request holds
        self._post({"op": "returned", "id": "", "loan": loan_id})

    def _tell_starts(self, ran_for: float = 0.0) -> None:
        """Tell the arbiter of every request started on a loan that it has not heard of yet (that has run
        ``ran_for`` seconds)."""
        now = time.monotonic()
        untold = [ticket_id for ticket_id, (_, since) in self._untold.items() if now - since >= ran_for]
        for ticket_id in untold:
            del self._untold[ticket_id]
        for ticket_id in untold:
            running = self._running.get(ticket_id)  # it may have ended while a new line was opened
            if running is not None:
                ticket, granted = running
                self._post(wire.start(ticket, self._on_loan.get(ticket_id, ""), granted.placement,
                                      self.specs_of(ticket)))

    def _ran_reports(self) -> list[dict]:
        """The messages that tell of the requests that ran on loans since the arbiter was last told."""
        ran, self._ran = self._ran, {}
        return [wire.ran(share, model, server, requests, seconds)
                for (_, model, server), (share, requests, seconds) in ran.items()]

    def _tell_starts_later(self) -> None:
        self._teller = None
        for report in self._ran_reports():
            self._post(report)
        # Under load every request is still running when the teller comes: those that started since are told
        # once they have run as long too, or, ended sooner, with the others in a ``ran`` report.
        self._tell_starts(ran_for=self._report_after)
        if self._untold:
            oldest = min(since for _, since in self._untold.values())
            self._teller = gevent.spawn_later(max(0.0, oldest + self._report_after - time.monotonic()),
                                              self._tell_starts_later)

    def _start_on_loan(self, ticket: Ticket) -> Grant | None:
        """Start ``ticket`` on a lent slot that fits it (the one with most left), told of later; None if none.

        The arbiter's loan says which requests it is for (``Loan.admits``); the others ask.
        """
        if not self._loans:
            return None
        best, options, prompt = None, {}, prompt_tokens(ticket.prefix)
        for loan in self._loans.values():
            if (loan.model == ticket.model and loan.server in ticket.candidates and loan.in_use < loan.slots
                    and loan.admits(ticket.share.klass, prompt)
                    and (best is None or loan.slots - loan.in_use > best.slots - best.in_use)):
                unified, reload = unify(loan.options, ticket.asked, ticket.enforced)
                if not reload:
                    best, options = loan, unified
        if best is None:
            return None
        granted = Grant(ticket.id, Placement(best.server, Start.WARM, options), 0.0)
        best.in_use += 1
        self._running[ticket.id] = (ticket, granted)
        self._on_loan[ticket.id] = best.id
        self._untold[ticket.id] = (self._clock(), time.monotonic())
        if self._teller is None:
            self._teller = gevent.spawn_later(self._report_after, self._tell_starts_later)
        return granted

    def status(self, timeout: float) -> dict | None:
        """Return the arbiter's state (``snapshot``), or None if it did not answer within ``timeout`` seconds."""
        return ask_status(self._ask, timeout)

    def _post(self, message: dict) -> None:
        """Send ``message`` on the line, if there is one; never wait, never fail.

        Without a line, what it says is said by the ``sync`` that opens the next one.
        """
        link = self._link
        if link is not None:
            try:
                link.send(message)
                return
            except OSError:
                self._lost(link)
        self._connecting()

    def _connecting(self) -> None:
        """Open a line to the arbiter in a greenlet of its own, unless one is open or being opened."""
        if self._link is None and (self._connector is None or self._connector.dead):
            self._connector = gevent.spawn(self._open_line)

    def _open_line(self) -> None:
        """Try to open the line until it opens, backing off; say all this worker holds on it."""
        delay, began, said = RECONNECT_DELAY, self._clock(), False
        while self._link is None:
            try:
                link = self._connect(self.receive)
            except OSError as exc:
                now = self._clock()
                if self._unreachable_since is None:
                    self._unreachable_since = now
                if not said and now - began >= RECONNECT_QUICKLY:  # not the moment a new arbiter takes office
                    log.warning("no scheduler reached for %.1fs (%s): trying again", now - began, exc)
                    said = True
                if now - self._unreachable_since >= self._unreachable_timeout:
                    for ticket_id in list(self._waiting):
                        self._tell_waiting(ticket_id, {"op": "unreachable"})
                gevent.sleep(delay)
                if now - began >= RECONNECT_QUICKLY:
                    delay = min(delay * 2, RECONNECT_MAX)
                continue
            self._opened(link)

    def _opened(self, link: Link) -> None:
        """Say all this worker holds and waits for on a new line, before any other message goes on it.

        Nothing here yields (a line's ``send`` never does), so no request's message comes between.
        """
        self._unreachable_since = None
        self._link = link
        self._loans.clear()  # the last arbiter's: the next one counts their requests as running
        self._untold.clear()  # told now, as running
        try:
            if self._borrow:
                link.send({"op": "join", "id": ""})
            link.send(wire.sync([wire.running(ticket, granted.placement, self.specs_of(ticket))
                                 for ticket, granted in self._running.values()],
                                [wire.submit(ticket, self.specs_of(ticket)) for ticket, _ in self._waiting.values()]))
            for report in self._ran_reports():
                link.send(report)
        except OSError:
            self._lost(link)
            return
        gevent.spawn(self._read, link)

    def receive(self, message: dict) -> None:
        """Hand the arbiter's answer to the request waiting for it (if it still waits); take or give back a loan."""
        op = message["op"]
        if op == "lend":
            self._loans[message["loan"]] = wire.loan_of(message)
        elif op == "recall":
            if self._loans.pop(message["loan"], None) is not None:
                # Not from here: the arbiter of this very worker may be sending this, in the middle of a decision.
                gevent.spawn(self._give_back, message["loan"])
        elif op == "grant" and self._at_once:
            self._take_grant(message)
        else:
            self._tell_waiting(message["id"], message)

    def _take_grant(self, message: dict) -> None:
        """Count a granted request as running the moment its grant arrives, then wake it.

        Not when its greenlet next runs: the line may break meanwhile, and the ``sync`` that opens the
        next one must say it runs, or the next arbiter takes its slot for free.
        """
        waiting = self._waiting.get(message["id"])
        if waiting is None or waiting[1].ready():
            return
        ticket, result = waiting
        del self._waiting[ticket.id]
        self._running[ticket.id] = (ticket, wire.grant_of(message))
        result.set(message)

    def _read(self, link: Link) -> None:
        try:
            for message in link.messages():
                try:
                    self.receive(message)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("dropped a message from the scheduler: %s", exc)
        except OSError as exc:
            log.warning("the scheduler connection failed: %s", exc)
        self._lost(link)
        self._connecting()  # say what waits and runs (or that nothing does) to the arbiter's successor

    def reconnect(self) -> None:
        """Close the line: the client opens a new one and says all it holds on it (a new term, a lost record)."""
        link = self._link
        if link is not None:
            self._lost(link)
            self._connecting()

    def _lost(self, link: Link) -> None:
        if self._link is link:
            self._link = None
            self._loans.clear()  # they were the lost arbiter's; the next one counts their requests as running
            self._on_loan.clear()
        try:
            link.close()
        except OSError:
            pass

