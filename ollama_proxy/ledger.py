"""Keep one record per request, from the first byte in to the response's close.

The ledger is what every other part writes to and reads from: auth puts the
principal on the record (and the end user a trusted front end names), routing
the backend, accounting the tokens; when the response closes, the close
listeners (the access log first, then usage, metrics, rate limits' token
budgets) each get the finished record once.

A WSGI middleware opens the record, gives the request its id (kept from
``X-Request-Id`` when a front proxy set a sane one) and puts the id on every
response, error pages included. It counts the bytes the body really sent, so a
stream is recorded once, with its duration and whether the client left.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, has_request_context, request

RECORD_KEY = "ollama_proxy.access"
LISTENERS_KEY = "ollama_proxy.close_listeners"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
log = logging.getLogger(__name__)

CloseListener = Callable[["RequestRecord"], None]


@dataclass
class AnswerText:
    """An answer's text, kept by the stream taps as it passes, up to ``limit`` bytes; n choices each apart."""

    limit: int
    pieces: dict[int, list[str]] = field(default_factory=dict)  # choice index -> its text so far
    size: int = 0
    whole: bool = True  # False once a piece was past the limit and left out

    def add(self, text: str, choice: int = 0) -> None:
        if not text:
            return
        size = len(text.encode("utf-8", "replace"))
        if self.size + size > self.limit:
            self.whole = False
            return
        self.size += size
        self.pieces.setdefault(choice, []).append(text)

    def text(self) -> str:
        """The text kept, choice after choice."""
        return "".join("".join(self.pieces[choice]) for choice in sorted(self.pieces))


@dataclass
class RequestRecord:
    """What one request did; views fill in the model, principal, route and tokens."""

    request_id: str
    method: str
    path: str
    client: str
    started: float
    status: int = 0
    bytes: int = 0
    first_byte: float | None = None
    completed: bool = False
    client_left: bool = False  # seen hanging up while the answer was still coming
    model: str | None = None
    caller: object = None  # who calls (``access.auth.Principal``), once its token was checked; None: nobody yet
    principal: str | None = None  # its name, as people read it
    principal_id: str | None = None  # what counts it (``auth.Principal.id``): key:12, token:bob
    key_id: int | None = None  # a managed key's row (api_keys.id); None: a token of the file
    team: str | None = None  # the principal's team (store.teams), if any
    team_id: int | None = None  # that team's row (teams.id)
    end_user: str | None = None  # the user a trusted front end sends the request for (access.end_users)
    upstream: float = 0.0  # seconds spent waiting on the upstream before the answer went out
    surface: str = "other"
    backend: str | None = None  # the backend's name, once routed
    upstream_model: str | None = None  # the model as the backend was asked for it
    prompt_tokens: int | None = None
    counted_tokens: int | None = None  # generated tokens as reported by finished answers
    provisional_tokens: int = 0  # generated chunks of answers not finished (yet, or ever)
    first_token: float | None = None  # perf_counter time of the first generated chunk
    endpoint: str | None = None  # the URL rule that served the request (/v1/models/<path:model_id>)
    queued: float = 0.0  # seconds spent waiting for a slot on a server
    waiting_since: float | None = None  # perf_counter time it began to wait for a slot, while it waits
    slots_awaited: int = 0  # its sends waiting for a slot now (n choices: up to n), as the dispatcher counts
    queue_class: str | None = None  # the principal's class, once the request waited for a slot
    left_in_queue: bool = False  # its client left while it waited for a slot: dropped, never sent
    load_seconds: float | None = None  # the model's load time, as Ollama reported it in a final chunk
    prefill_seconds: float | None = None  # the time Ollama took to read the prompt not in its cache (final chunk)
    # Of prompt_tokens, those Ollama read from its cache, as its answers said (prompt_eval_cached_count: no release up
    # to 0.33 sends it, only an unmerged branch does; their prompt_eval_count counts cached tokens too):
    cached_tokens: int | None = None  # None: no answer said
    # The proxy's own estimate of the same, never Ollama's word: the tokens the scheduler's mirror of the servers'
    # caches expected the server it placed the request on to hold (in Ollama's tokens), summed over the answers sent.
    cached_tokens_estimated: int | None = None  # None: none made (not scheduled, or no prompt the mirror follows)
    # Its server may hold another tenant's prompts (``dispatch.tenants``): no cache figure, nor prefill, is shown.
    cache_withheld: bool = False
    gpu_seconds: float | None = None  # the answers' GPU time, summed (Ollama's total_duration, else measured: Hold)
    measured: bool = False  # a figure is the proxy's own measure or estimate, where Ollama reported none
    budgeted: tuple = ()  # the budgets' (slot, period start) the request is charged to when it ends (access.budgets)
    budget_leased: bool = False  # admitted against its worker's leases (``access.leases``): charged to them
    deferred: list = field(default_factory=list)  # work that waits until the close listeners ran (``after_listeners``)
    listened: bool = False  # the close listeners ran
    rate_windows: tuple = ()  # the rate-limit windows it was counted in (``access.ratelimit``), for its headers
    budget_remaining: str | None = None  # what is left of its tightest budget (``access.budgets``): a header
    budget_exceeded: str | None = None  # the soft budgets it found spent: a header
    over_budget: tuple[str, ...] = ()  # the modes of the budgets it found spent: hard (refused), soft, shadow
    chat_request: bytes | None = None  # a chat's body as sent, when the chat log writes it (``chatlog``)
    answer: AnswerText | None = None  # the answer's text, kept by the taps when something reads it (the chat log)

    @property
    def aborted(self) -> bool:
        """Whether the client left before the end of the answer."""
        return self.client_left or not self.completed

    @property
    def completion_tokens(self) -> int | None:
        if self.counted_tokens is None and not self.provisional_tokens:
            return None
        return (self.counted_tokens or 0) + self.provisional_tokens

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else round((self.first_token - self.started) * 1000, 2)

    def queue_seconds(self, now: float) -> float:
        """Seconds spent waiting for a slot so far, the wait going on included."""
        return self.queued + (now - self.waiting_since if self.waiting_since is not None else 0.0)

    def server_timing(self, now: float) -> str:
        queued = self.queue_seconds(now)
        proxy = max(0.0, now - self.started - self.upstream - queued)
        timing = (f"proxy;dur={proxy * 1000:.2f}, queue;dur={queued * 1000:.2f}, "
                  f"upstream;dur={self.upstream * 1000:.2f}")
        if self.prefill_seconds is not None and not self.cache_withheld:  # known only for an answer read whole
            timing += f", prefill;dur={self.prefill_seconds * 1000:.2f}"
        return timing


@dataclass
class Hold:
    """One send's hold of a GPU slot, from its grant until Ollama stopped, charged to its record as it ends.

    An answer that reports Ollama's figures (``total_duration``, ``prompt_eval_count``) is charged
    those (``reported``); one that never does (a stream cut short, a client that left, an error after
    the start, an endpoint that reports none) is charged what the proxy measured: the time from its
    grant (the dispatcher moves it on to when the whole request was out, as Ollama got it) to the
    moment Ollama was seen to let it go (``at``), else the answer closed, and ``prompt()`` (its estimate of the
    prompt's tokens, made only then; None once Ollama refused the request, as it then read none).
    """

    record: RequestRecord
    granted: float
    prompt: Callable[[], int] | None = None
    reported: bool = False
    ended: bool = False
    figures: dict | None = None  # the counts and durations of the answer's final chunk, once it came
    # A whole answer's tokens generated in (seconds held, prompt tokens): none came to be counted one by one.
    generated: Callable[[float, int], int] | None = None

    def end(self, ran: bool = True, at: float | None = None) -> None:
        """The answer closed (``ran``: False if Ollama was never reached; ``at``: the perf_counter time Ollama was
        seen to let it go, if it was): charge it, once."""
        if self.ended:
            return
        self.ended = True
        if self.reported or not ran:
            return
        record = self.record
        held = (time.perf_counter() if at is None else at) - self.granted
        record.gpu_seconds = (record.gpu_seconds or 0.0) + held
        prompt = self.prompt() if self.prompt is not None else 0
        if prompt:
            record.prompt_tokens = (record.prompt_tokens or 0) + prompt
        if self.generated is not None:
            record.provisional_tokens += self.generated(held, prompt)
        record.measured = True


def hold_slot(record: RequestRecord | None, prompt: Callable[[], int] | None) -> Hold | None:
    """Start charging a send granted its slot now (None without a record)."""
    return None if record is None else Hold(record, time.perf_counter(), prompt)


class _RecordedBody:
    """Count what a response body sends, and hand the record to the listeners when it closes."""

    def __init__(self, body, record: RequestRecord, listeners: list[CloseListener]):
        self._body = body
        self._record = record
        self._listeners = listeners

    def __iter__(self):
        if getattr(self._body, "counts_onto_record", False):
            return iter(self._body)  # a stream that counts what it sends itself: no step of ours per chunk here
        return self._counted()

    def _counted(self):
        record = self._record
        for chunk in self._body:
            if record.first_byte is None:
                record.first_byte = time.perf_counter()
            record.bytes += len(chunk)
            yield chunk
        record.completed = True

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()  # closes the view's generator: the upstream response goes with it
        finally:
            try:
                for listener in self._listeners:
                    try:
                        listener(self._record)
                    except Exception:  # a listener's fault must not break the response's close
                        log.exception("close listener %r failed", listener)
            finally:
                _listened(self._record)


class LedgerMiddleware:
    """Wrap a WSGI app: a record and a request id for every request, handed on when it closes."""

    def __init__(self, app, listeners: list[CloseListener] | None = None,
                 surface_of: Callable[[str], str] = lambda path: "other"):
        self.app = app
        self.listeners = [] if listeners is None else listeners
        self.surface_of = surface_of  # a path's surface (``surfaces.surface_of``): the ledger imports nothing of ours

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        record = RequestRecord(
            request_id=incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex,
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", ""),  # no query string: it is the client's to fill with anything
            client=environ.get("REMOTE_ADDR", ""),
            started=time.perf_counter(),
            surface=self.surface_of(environ.get("PATH_INFO", "")),
        )
        environ[RECORD_KEY] = record

        def recording_start_response(status, headers, exc_info=None):
            record.status = int(status.split(" ", 1)[0])
            headers = [(k, v) for k, v in headers if k.lower() not in ("x-request-id", "server-timing")]
            headers.append(("X-Request-Id", record.request_id))
            headers.append(("Server-Timing", record.server_timing(time.perf_counter())))
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, recording_start_response)
        except BaseException:
            _listened(record)
            raise
        return _RecordedBody(body, record, self.listeners)


def after_listeners(record: RequestRecord | None, work: Callable[[], None]) -> None:
    """Do ``work`` once the request's close listeners ran (now, if they have, or without a record).

    A budgeted request's slot is given back only then: the request granted it next reads a spend
    that holds this one's (``access.budgets`` charges it in a listener).
    """
    if record is None or record.listened:
        work()
    else:
        record.deferred.append(work)


def _listened(record: RequestRecord) -> None:
    record.listened = True
    deferred, record.deferred = record.deferred, []
    for work in deferred:
        try:
            work()
        except Exception:  # the next one still runs: each gives back a slot
            log.exception("work deferred to a request's close failed")


def access_record(environ) -> RequestRecord | None:
    """Return the record of the request behind ``environ``."""
    return environ.get(RECORD_KEY)


def current_record() -> RequestRecord | None:
    """Return the record of the request being handled (for stream taps to keep)."""
    return access_record(request.environ)


def current_caller():
    """Return who calls in the request being handled (``access.auth.Principal``); None before its token is
    checked, for a public path, or outside a request."""
    record = current_record() if has_request_context() else None
    return None if record is None else record.caller


def note_model(model: str | None) -> None:
    """Put the model a request asked for on its record."""
    record = current_record()
    if record is not None:
        record.model = model


def note_route(backend: str, upstream_model: str | None) -> None:
    """Put the backend a request was routed to, and the model it was asked for, on its record."""
    record = current_record()
    if record is not None:
        record.backend, record.upstream_model = backend, upstream_model


def note_upstream(seconds: float) -> None:
    """Count ``seconds`` of upstream time into the request's Server-Timing (parallel calls: the longest)."""
    record = current_record()
    if record is not None:
        record.upstream = max(record.upstream, seconds)


def note_upstream_since(started: float) -> None:
    """Count the time since ``started`` not spent waiting for a slot as upstream time.

    For a stream that starts before its answer does (keepalives while it waits): its headers go now.
    """
    record = current_record()
    if record is not None:
        now = time.perf_counter()
        record.upstream = max(record.upstream, now - started - record.queue_seconds(now))


def add_close_listener(app: Flask, listener: CloseListener) -> None:
    """Call ``listener(record)`` once for every request, when its response closes, in the order added.

    It runs in the worker, in the greenlet closing the response: keep it cheap
    (queue the record; do no I/O inline).
    """
    app.extensions[LISTENERS_KEY].append(listener)


def init_app(app: Flask, surface_of: Callable[[str], str]) -> None:
    """Give every request of ``app`` a record, its surface named by ``surface_of(path)``."""
    app.extensions[LISTENERS_KEY] = []
    app.wsgi_app = LedgerMiddleware(app.wsgi_app, app.extensions[LISTENERS_KEY], surface_of)
