"""Hold one request until the instance's scheduler grants it a slot on a server.

The glue between one request and the scheduler: who asks (the principal's share
of the GPUs, or the share of the end user a trusted front end named), what for
(the model, the servers that may serve it, the options that make Ollama reload),
until when, and the client, watched while it waits: one that leaves is dropped
unsent. A request that waited is checked again at its grant (its budgets: spent
meanwhile, it is refused and its slot goes to the next). A grant names the server
and the reload options to send. The dispatcher asks; the body is its business.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ollama_proxy.client_watch import watch_client
from ollama_proxy.errors import ClientGone
from ollama_proxy.greenlets import gevent_active
from ollama_proxy.ledger import RequestRecord, after_listeners
from ollama_proxy.routing.names import canonical
from ollama_proxy.scheduler.decisions.core import Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import Chain
from ollama_proxy.scheduler.decisions.servers import Placement, Start
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from ollama_proxy.scheduler.transport.client import ClientLeft, SchedulerClient

ANONYMOUS = Share("anonymous")


@dataclass(frozen=True)
class Requester:
    """Who a request is, for the scheduler: taken in the request's context, used from any greenlet."""

    share: Share = ANONYMOUS
    environ: dict | None = None  # the client's, watched while the request waits
    record: RequestRecord | None = None
    enforced: frozenset[str] = frozenset()  # reload options a per-model override sets: sent as set
    # Raises why a request that waited may no longer start (a hard budget spent meanwhile): asked at its grant.
    check_at_grant: Callable[[], None] | None = None


def share_of(principal, end_user: str | None) -> Share:
    """Return the share a request is scheduled under: its key's, or the end user's a trusted front end named.

    Counted by the key's and team's ids, so a key or team made again under an old name does not take up the old
    one's place in the fair share; shown by the key's name.
    """
    if principal is None:
        return ANONYMOUS
    named = end_user is not None and principal.trusted_frontend
    return Share(principal.id, principal.weight, principal.klass, end_user if named else None,
                 principal.team_ref, principal.team_weight, name=principal.name, owner=principal.owner)


@dataclass
class Admitted:
    """A granted slot: the server, the reload options to send, and how to give the slot back."""

    server: str
    options: dict
    release: Callable[[], None]
    cached: int | None = None  # the prompt tokens the scheduler expects the server to read from cache: an estimate


class Admission:
    """Admit requests through this process's client of the instance's scheduler."""

    def __init__(self, client: Callable[[], SchedulerClient], resign: Callable[[], None] = lambda: None) -> None:
        self._client = client
        self._resign = resign
        self.waiting_changed: Callable[[int], None] = lambda change: None  # the metrics' gauge, when on
        self.placed: Callable[[Placement, dict], None] = lambda placement, asked: None  # the metrics' counters

    def stand(self) -> None:
        """Join the instance's scheduler now (a worker starting), not at the first request."""
        if gevent_active():
            self._client().join()

    def resign(self) -> None:
        """Stop deciding, if this worker does (a worker exiting): the next one takes over at once."""
        self._resign()

    def admit(self, who: Requester | None, model: str, candidates: list[str], asked: dict,
              deadline: float | None = None, prefix: Chain = (), embeds: bool = False) -> Admitted | None:
        """Wait for a slot on one of ``candidates`` until ``deadline`` (``time.monotonic()``).

        ``embeds``: the request is an embedding. None where nothing is scheduled (no gevent worker).
        """
        if not gevent_active():
            return None
        who = who or Requester()
        ticket = Ticket(_ticket_id(), who.share, canonical(model), tuple(candidates), asked, who.enforced,
                        prefix=prefix, embeds=embeds)
        client = self._client()
        record = who.record
        if record is not None:
            record.queue_class = who.share.klass
        try:
            granted = client.admit(ticket, watch=self._watcher(who, record), deadline=deadline)
        except ClientLeft:
            if record is not None:
                record.left_in_queue = True
            raise ClientGone("the client left while its request waited for a slot") from None
        if record is not None:
            record.queued += granted.waited
        if granted.waited > 0 and who.check_at_grant is not None:
            try:
                who.check_at_grant()
            except BaseException:
                client.end(ticket.id, sent=False)  # the slot goes to the next
                raise
        placement = granted.placement
        self.placed(placement, ticket.asked)

        def release() -> None:
            loaded = placement.start is not Start.WARM and record is not None
            read = None
            if record is not None and record.prefill_seconds is not None and record.prompt_tokens is not None:
                read = PromptRead(record.prompt_tokens, record.cached_tokens, record.prefill_seconds)
            end = partial(client.end, ticket.id, record.load_seconds if loaded else None, read)
            if record is not None and record.budgeted:  # charged first: the request granted it next sees the spend
                after_listeners(record, end)
            else:
                end()
        return Admitted(placement.server, placement.options, release, granted.cached)

    def _watcher(self, who: Requester, record: RequestRecord | None):
        asked_at = time.perf_counter()

        def waits(on_gone: Callable[[], None]) -> Callable[[], None]:
            """It waits (it was not granted at once): count it, and watch its client until it stops waiting."""
            self.waiting_changed(1)
            if record is not None:
                record.slots_awaited += 1
                if record.waiting_since is None:  # a stream that starts meanwhile says so in its Server-Timing
                    record.waiting_since = asked_at
            stop_watching = watch_client(who.environ, on_gone) if who.environ is not None else None

            def stopped() -> None:
                self.waiting_changed(-1)
                if record is not None:
                    record.slots_awaited -= 1
                    if not record.slots_awaited:
                        record.waiting_since = None  # the whole wait is counted in ``queued`` next
                if stop_watching is not None:
                    stop_watching()
            return stopped
        return waits

    def status(self, timeout: float) -> dict | None:
        """The scheduler's state (``snapshot``); None if it did not answer in ``timeout`` seconds, or none runs here."""
        return self._client().status(timeout) if gevent_active() else None


class _TicketIds:
    """Ticket ids unique across workers and instances: a random prefix per process, then a count."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked worker must not repeat its parent's ids

    def reset(self) -> None:
        self._numbers = map(f"{uuid.uuid4().hex[:16]}-{{}}".format, itertools.count(1))

    def __call__(self) -> str:
        return next(self._numbers)


_ticket_id = _TicketIds()
