"""Decide which Ollama server runs a request, and when: the one place that does.

A request for a model of the Ollama servers goes:

1. rank the servers that may serve it (``pool_servers.rank``: those that list it, loaded
   first, then the least busy; failing ones last);
2. GPU work for scheduled servers waits for the scheduler's grant, which names the
   server and the load options (``Admission``); other work takes the first server, and
   one of its lock-file slots where it has ``max_concurrent``;
3. the body is encoded once, with the granted options (``OllamaBody``);
4. it is sent; a server that cannot be reached, or answers 5xx before its first byte (but
   501 and 505, which are the request's fault), is passed over for ``routing.cooldown``,
   its slot released, and the next one asked;
5. the answer frees the slot when it closes.

GPU work is charged from its grant to its answer's close (``ledger.Hold``): an attempt that
never reached a server costs nothing; every other, retried or failed over from, costs what ran.

The whole wait for a slot, every try and every fault of the scheduler included, is
bounded by ``scheduling.max_wait`` from the moment the request asks, and by its client:
one that leaves is dropped, unsent or cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus

from ollama_proxy.backends.connection import Sending
from ollama_proxy.backends.ollama import post_json
from ollama_proxy.backends.pool import NOT_REACHED, OllamaPool
from ollama_proxy.backends.pool_servers import PooledResponse, PoolServer, rank
from ollama_proxy.client_watch import cancelled_if_client_leaves
from ollama_proxy.dispatch.answer_counts import AnswerCounts
from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.dispatch.charging import EMBEDDING_PATHS, PromptCharge, prompt_charge
from ollama_proxy.dispatch.requester import current_requester
from ollama_proxy.dispatch.tenants import shows_cache, usable
from ollama_proxy.errors import ClientGone, Forbidden, Overloaded
from ollama_proxy.greenlets import OFF_LOOP_BYTES, gevent_active, off_loop
from ollama_proxy.ledger import Hold, hold_slot
from ollama_proxy.observability.accounting import count_after_cut, note_cache_estimate
from ollama_proxy.scheduler.decisions.prefix import chain_of
from ollama_proxy.scheduler.transport.admission import Admission, Requester
from ollama_proxy.surfaces import ollama_path

DISPATCHER = "ollama_proxy.dispatcher"  # the app's extension
# A chain over more messages is hashed on a thread: 20,000 of them take 0.16 s, which would hold every stream.
CHAIN_OFF_LOOP_MESSAGES = 500


def server_failed(status: int) -> bool:
    """Whether an answer's status says the server failed, not the request: a 5xx, but 501 and 505, which are about
    what was asked (Ollama 0.33 answers 501 to an embedding asked of a chat model)."""
    return status >= 500 and status not in (HTTPStatus.NOT_IMPLEMENTED, HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)


def _makes_a_gpu_work(path: str) -> bool:
    """Whether a request to ``path`` waits for a slot (inference); listings and management are never queued."""
    served = ollama_path(path)
    return served is not None and served.scheduled


class Dispatcher:
    """Send requests for Ollama models to the pool's servers, through the scheduler where it decides."""

    @property
    def scheduled(self) -> bool:
        """Whether a request may wait for a slot here (a server is scheduled, in a gevent worker)."""
        return self.admission is not None and gevent_active()

    def __init__(self, pool: OllamaPool, admission: Admission | None, max_wait: float,
                 place_by_prompt: bool = True, isolation: str = "team") -> None:
        self.pool = pool
        self.admission = admission
        self.max_wait = max_wait
        self.place_by_prompt = place_by_prompt  # tell the scheduler each prompt (``scheduling.prompt_placement``)
        self.isolation = isolation  # whose cache figures a request is told (``scheduling.prompt_cache_isolation``)
        self.counts = AnswerCounts()  # how Ollama counts each model's prompts, and its pace: charged where unsaid

    def for_model(self, model: str, read_timeout: tuple[float, str] | None = None, enforce: dict | None = None,
                  who: Requester | None = None) -> OllamaModel:
        """The backend a route for ``model`` sends through: this dispatcher, on behalf of ``who`` (default: the
        current request's caller, with the reload options its model's ``enforce`` override sets)."""
        return OllamaModel(self, model, current_requester(enforce or {}) if who is None else who, read_timeout)

    def send(self, model: str, method: str, path: str, who: Requester, body=None, **request) -> PooledResponse:
        """Send a request for ``model``; return the open answer of the server that took it."""
        self.pool.start()
        if isinstance(body, OllamaBody) and body.large():
            off_loop(body.encoded)  # a translated 45 MB took 0.13 s to encode
        now = time.monotonic()
        team = who.record.team if who.record is not None else None
        servers = usable(self.pool.servers, team)
        if not servers:
            raise Forbidden(f"no Ollama server serves {_whom(team)}: each is kept to other teams (backends[].teams)")
        candidates = rank(servers, model, now)
        scheduled = [s for s in candidates if s.settings.scheduling]
        if scheduled and self.admission is not None and _makes_a_gpu_work(path) and gevent_active():
            return self._send_scheduled(model, method, path, who, body, scheduled, now + self.max_wait, request)
        sent = body.encoded() if isinstance(body, OllamaBody) else body
        for i, server in enumerate(candidates):
            answer = self._try(server, self._take_slot(server, who), i == len(candidates) - 1, method, path, who,
                               False, sent, request, self._charge(model, path, body, server))
            if answer is not None:
                return answer
        raise AssertionError("rank() returns at least one server")

    def _prompt_chain(self, path: str, body) -> tuple:
        """The prompt's chain for placement by prompt cache; a long or large one is hashed off the event loop (one
        45 MB message took 0.46 s to hash)."""
        if not (self.place_by_prompt and isinstance(body, OllamaBody)):
            return ()
        messages = body.data.get("messages")
        if len(body.encoded()) > OFF_LOOP_BYTES or isinstance(messages, list) and \
                len(messages) > CHAIN_OFF_LOOP_MESSAGES:
            return off_loop(lambda: chain_of(path, body.data))
        return chain_of(path, body.data)

    def _send_scheduled(self, model: str, method: str, path: str, who: Requester, body,
                        candidates: list[PoolServer], deadline: float, request: dict) -> PooledResponse:
        now = time.monotonic()
        remaining = [s for s in candidates if not s.cooling(now)] or candidates
        asked = body.asked if isinstance(body, OllamaBody) else {}
        chain = self._prompt_chain(path, body)
        while remaining:
            admitted = self.admission.admit(who, model, [s.name for s in remaining], asked, deadline, chain,
                                            path in EMBEDDING_PATHS)
            server = next((s for s in remaining if s.name == admitted.server), None)
            if server is None:  # a server this worker does not have: no arbiter of ours grants one
                admitted.release()
                raise Overloaded(f"the scheduler granted '{admitted.server}', which this worker does not know")
            remaining.remove(server)
            sent = _with_options(body, admitted.options)
            # Its client is watched until Ollama answers: Ollama sends nothing, headers included, before its
            # first token, and loading the model or reading a long prompt may take a GPU many seconds.
            answer = self._try(server, _counted(server, admitted.release), not remaining, method, path, who, True,
                               sent, request, self._charge(model, path, body, server, chain, admitted.options))
            if answer is not None:
                note_cache_estimate(who.record, admitted.cached)  # a server that failed answered nothing: not noted
                return answer
        raise AssertionError("a scheduled request has at least one candidate")

    def _try(self, server: PoolServer, release: Callable[[], None], last: bool, method: str, path: str,
             who: Requester, watched: bool, body, request: dict,
             charge: PromptCharge | None) -> PooledResponse | None:
        """Send to one server holding its slot; None to try the next (it was unreachable or failed, and is not last).

        ``watched``: a client that leaves before Ollama answers (its headers) cancels the request.
        ``charge``: GPU work's prompt (and a whole answer's generation) as the proxy counts them, charged with its
        slot-time if Ollama never counts them.
        """
        hold, sending = _hold(who, charge), Sending()
        try:
            with cancelled_if_client_leaves(who.environ if watched else None, sending.half_close,
                                            server.backend.settings.cut_hold), sending:
                upstream = server.backend.open(method, path, body=body, **request)
        except NOT_REACHED as exc:
            _ended(hold, ran=False)
            release()
            self.pool.fail(server, exc.message)
            if last:
                raise
            return None
        except BaseException:
            _ended(_metered(hold, sending))  # the client left, or the read timed out, while Ollama worked
            release()
            raise
        _metered(hold, sending)
        if sending.half_closed:  # its client left, and Ollama answered that it stopped: it let the slot go
            upstream.close()
            _ended(hold, at=upstream.let_go_at)
            release()
            raise ClientGone("the client left before its answer began")
        if hold is not None and upstream.status >= 400:
            hold.prompt = hold.generated = None  # refused, or failed before its answer: Ollama read no prompt
        if server_failed(upstream.status):
            self.pool.fail(server, f"answered status {upstream.status} to {path}")
            if not last:
                upstream.close()
                _ended(hold)
                release()
                return None
        if who.record is not None:
            who.record.cache_withheld = not shows_cache(server.settings, who.record.team, self.isolation)
        after_cut = lambda: getattr(upstream, "after_cut", b"")  # noqa: E731 - read when it closes
        return PooledResponse(upstream, server, lambda: (count_after_cut(hold, after_cut()), _learn(charge, hold),
                                                         _ended(hold, at=getattr(upstream, "let_go_at", None)),
                                                         release()), hold)

    def _charge(self, model: str, path: str, body, server: PoolServer, chain: tuple = (),
                granted: dict | None = None) -> PromptCharge | None:
        """How a send is charged where Ollama never counts; None if it makes no GPU work."""
        if not _makes_a_gpu_work(path):
            return None
        return prompt_charge(path, body, model, server.backend.settings.context_length, self.counts, chain, granted)

    def _take_slot(self, server: PoolServer, who: Requester) -> Callable[[], None]:
        """Count a request in; wait for one of a server's lock-file slots at its max_concurrent (scheduling off)."""
        record = who.record
        if server.slots is None or record is None:
            return _counted(server, self.pool.take_slot(server))
        record.slots_awaited += 1  # a stream waiting this long starts with keepalives
        try:
            return _counted(server, self.pool.take_slot(server))
        finally:
            record.slots_awaited -= 1


def _whom(team: str | None) -> str:
    return f"team '{team}'" if team is not None else "a key without a team"


def _with_options(body, options: dict):
    """The bytes a granted request sends: a large body's encoded again off the event loop, where options change."""
    if not isinstance(body, OllamaBody):
        return body
    return off_loop(lambda: body.with_options(options)) if body.large() else body.with_options(options)


def _hold(who: Requester, charge: PromptCharge | None) -> Hold | None:
    """Start charging a send of GPU work (None for other work, or without a record)."""
    if charge is None:
        return None
    hold = hold_slot(who.record, charge.tokens)
    if hold is not None and charge.whole:
        hold.generated = charge.generated
    return hold


def _learn(charge: PromptCharge | None, hold: Hold | None) -> None:
    if charge is not None and hold is not None:
        charge.answered(hold.figures)


def _metered(hold: Hold | None, sending: Sending) -> Hold | None:
    """Start a hold's meter when Ollama got the request (sent whole): what it held the slot for."""
    if hold is not None and sending.sent_at is not None:
        hold.granted = sending.sent_at
    return hold


def _ended(hold: Hold | None, ran: bool = True, at: float | None = None) -> None:
    if hold is not None:
        hold.end(ran, at)


def _counted(server: PoolServer, release_slot: Callable[[], None]) -> Callable[[], None]:
    server.in_flight += 1

    def release() -> None:
        server.in_flight -= 1
        release_slot()
    return release


class OllamaModel:
    """The Ollama servers, for one model and one caller: a route's backend, sending through the dispatcher."""

    def __init__(self, dispatcher: Dispatcher, model: str, who: Requester,
                 read_timeout: tuple[float, str] | None = None) -> None:
        self.dispatcher = dispatcher
        self.pool = dispatcher.pool
        self.model = model
        self.who = who
        self.read_timeout = read_timeout  # the model's own (seconds, setting), from its override's timeout
        self.name = "ollama"
        self.describe = "Ollama"

    @staticmethod
    def encode(body: dict) -> OllamaBody:
        """The body as ``post_json`` takes it: encoded once, when it is sent, with the options granted."""
        return OllamaBody(body)

    def open(self, method: str, path: str, *, body=None, **request) -> PooledResponse:
        if self.read_timeout is not None and "timeout" not in request:
            seconds, setting = self.read_timeout
            request.update(timeout=(self.pool.default.backend.settings.connect_timeout, seconds),
                           timeout_setting=setting)
        return self.dispatcher.send(self.model, method, path, self.who, body, **request)

    def post_json(self, path: str, body, model_label: str | None = None) -> PooledResponse:
        return post_json(self, path, body)
