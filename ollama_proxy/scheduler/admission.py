"""Hold each GPU request until the instance's scheduler grants it a slot on a server.

The glue between one request and the scheduler: who asks (the principal's share
of the GPUs, or the share of the end user a trusted front end named on the
request's record: ``access.end_users``), what for (the model, the servers that may serve it, the options
that make Ollama reload), and the client, watched while it waits: one that
leaves is dropped unsent. A grant names the server, and the reload options the
request is sent with.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from flask import has_request_context, request

from ollama_proxy.errors import ClientGone
from ollama_proxy.observability.ledger import RequestRecord, current_record
from ollama_proxy.relay.streaming import gevent_active, watch_client
from ollama_proxy.routing.names import canonical
from ollama_proxy.scheduler.client import ClientLeft, SchedulerClient
from ollama_proxy.scheduler.core import Ticket
from ollama_proxy.scheduler.fairness import Share
from ollama_proxy.scheduler.options import RELOAD_OPTIONS, reload_options
from ollama_proxy.scheduler.servers import Placement, Start

# The requests that make a GPU work; listings and management are never queued.
SCHEDULED_PATHS = frozenset({"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"})
ANONYMOUS = Share("anonymous")
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds an encoder each call for these


@dataclass(frozen=True)
class Requester:
    """Who a request is, for the scheduler: taken in the request's context, used from any greenlet."""

    share: Share = ANONYMOUS
    environ: dict | None = None  # the client's, watched while the request waits
    record: RequestRecord | None = None
    enforced: frozenset[str] = frozenset()  # reload options a per-model override sets: sent as set


def current_requester(principal, enforce: dict) -> Requester:
    """Describe the current request's caller (``principal``) and its model's ``enforce`` override."""
    if not has_request_context():
        return Requester(share_of(principal, None))
    record = current_record()
    end_user = record.end_user if record is not None else None
    return Requester(share_of(principal, end_user), request.environ, record,
                     frozenset(name for name in enforce if name in RELOAD_OPTIONS))


def share_of(principal, end_user: str | None) -> Share:
    """Return the share a request is scheduled under: its key's, or the end user's a trusted front end named."""
    if principal is None:
        return ANONYMOUS
    named = end_user is not None and principal.trusted_frontend
    return Share(f"{principal.name}/{end_user}" if named else principal.name, principal.weight, principal.klass)


@dataclass
class Admitted:
    """A granted slot: where to send the request, with what body, and how to give the slot back."""

    server: str
    body: bytes
    release: Callable[[], None]


class Admission:
    """Admit requests through this process's client of the instance's scheduler."""

    def __init__(self, client: Callable[[], SchedulerClient]) -> None:
        self._client = client
        self.waiting_changed: Callable[[int], None] = lambda change: None  # the metrics' gauge, when on
        self.placed: Callable[[Placement, dict], None] = lambda placement, asked: None  # the metrics' counters

    def stand(self) -> None:
        """Join the instance's scheduler now (a worker starting), not at the first request."""
        self._client()

    def admit(self, who: Requester | None, model: str, candidates: list[str], body: bytes) -> Admitted | None:
        """Wait for a slot on one of ``candidates``; None where nothing is scheduled (no gevent worker)."""
        if not gevent_active():
            return None
        who = who or Requester()
        asked_body = _json(body)
        options = asked_body.get("options") if isinstance(asked_body, dict) else None
        ticket = Ticket(_ticket_id(), who.share, canonical(model), tuple(candidates), reload_options(options),
                        who.enforced)
        client = self._client()
        record = who.record
        if record is not None:
            record.queue_class = who.share.klass
        asked_at = time.perf_counter()

        def waits(on_gone: Callable[[], None]) -> Callable[[], None]:
            """It waits (it was not granted at once): count it, and watch its client until it stops waiting."""
            self.waiting_changed(1)
            if record is not None:
                record.waiting_since = asked_at  # a stream that starts meanwhile says so in its Server-Timing
            stop_watching = watch_client(who.environ, on_gone) if who.environ is not None else None

            def stopped() -> None:
                self.waiting_changed(-1)
                if record is not None:
                    record.waiting_since = None  # the whole wait is counted in ``queued`` next
                if stop_watching is not None:
                    stop_watching()
            return stopped
        try:
            granted = client.admit(ticket, watch=waits)
        except ClientLeft:
            if record is not None:
                record.left_in_queue = True
            raise ClientGone("the client left while its request waited for a slot") from None
        if record is not None:
            record.queued += granted.waited
        placement = granted.placement
        self.placed(placement, ticket.asked)

        def release() -> None:
            loaded = placement.start is not Start.WARM and record is not None
            client.end(ticket.id, record.load_seconds if loaded else None)
        sent = _with_options(body, asked_body, placement.options) if placement.options != ticket.asked else body
        return Admitted(placement.server, sent, release)

    def status(self, timeout: float) -> dict | None:
        """The scheduler's state (``snapshot``); None if it did not answer in ``timeout`` seconds, or none runs here."""
        return self._client().status(timeout) if gevent_active() else None


def _encoded_options(options: dict) -> bytes:
    try:
        return _encoded(tuple(options.items()))
    except TypeError:  # a value no key can hold (a list a request sent): encoded each time
        return _COMPACT.encode(options).encode()


@lru_cache(maxsize=256)  # a model runs with one set of options on each server: a few sets in all
def _encoded(options: tuple) -> bytes:
    return _COMPACT.encode(dict(options)).encode()


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


def _json(body: bytes):
    if not isinstance(body, bytes) or b'"options"' not in body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _with_options(body: bytes, parsed, options: dict) -> bytes:
    """Return ``body`` with the reload options the grant decided (one value per model and server)."""
    if parsed is None and b'"options"' not in body:
        # Nothing to merge with: the object goes last, and a long chat is not decoded and encoded again for it.
        # A key that only folds to "options" ("Options") stays before it: Ollama's decoder reads this one last.
        head = body.rstrip()
        if head.endswith(b"}") and head[:-1].rstrip() != b"{":
            return head[:-1] + b',"options":' + _encoded_options(options) + b"}"
    parsed = parsed if isinstance(parsed, dict) else json.loads(body)
    parsed["options"] = {**(parsed.get("options") or {}), **options}
    return _COMPACT.encode(parsed).encode()
