"""Route among several Ollama servers: who has a model, who is free, who is failing.

Each worker process keeps its own view of the servers: the models each lists
(``/api/tags``) and has loaded (``/api/ps``), read again every
``routing.refresh_interval`` seconds by one background thread (a greenlet
under gevent), started on first use, never at import. A request for a model
goes to a server that has it, loaded first, then the least busy; a server
that refuses the connection or answers 5xx before the first byte is passed
over for ``routing.cooldown`` seconds, and the request tries the next one. A
model no server lists goes to the default server, so Ollama's own 404 (or its
pull-on-demand behaviour) is unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.backends.pool_servers import PooledResponse, ServerState, rank
from ollama_proxy.backends.slots import Slots
from ollama_proxy.config import DEFAULT_SERVER, OllamaServerSettings, RoutingSettings, ServiceSettings
from ollama_proxy.errors import Overloaded, ProxyError, UpstreamConnectTimeout, UpstreamUnavailable
from ollama_proxy.relay.streaming import cancelled_if_client_leaves
from ollama_proxy.relay.waiting import note_sending
from ollama_proxy.routing.names import canonical
from ollama_proxy.scheduler.admission import SCHEDULED_PATHS

if TYPE_CHECKING:
    from ollama_proxy.scheduler.admission import Admission, Requester

log = logging.getLogger(__name__)
# Failures that prove the request never reached the server: safe to send elsewhere.
NOT_REACHED = (UpstreamUnavailable, UpstreamConnectTimeout)
# Ollama answers these in a stream unless the body says "stream": false; the others answer whole.
STREAMING_PATHS = frozenset({"/api/chat", "/api/generate"})


def _lock_slots(directory: str, server: OllamaServerSettings) -> Slots | None:
    """Lock-file slots bound a server at max_concurrent when the scheduler does not (scheduling off)."""
    return Slots(directory, server.name, server.max_concurrent) if server.max_concurrent and not server.scheduling \
        else None


class OllamaPool:
    """The default server (``service.base_url``) and every ``type: ollama`` backend."""

    def __init__(self, service: ServiceSettings, servers: tuple[OllamaServerSettings, ...],
                 routing: RoutingSettings, slot_dir: str):
        default = OllamaServerSettings(DEFAULT_SERVER, service.base_url, service.max_concurrent, (),
                                       service.num_parallel, service.max_loaded_models, service.scheduling)
        self.routing = routing
        self.servers = [ServerState(s, OllamaBackend(replace(service, base_url=s.base_url), s.name),
                                    slots=_lock_slots(slot_dir, s)) for s in (default, *servers)]
        self.admission: Admission | None = None  # the scheduler's, when a server is scheduled
        self._lock = threading.Lock()
        self._pid = 0
        self._first_refresh = threading.Event()

    @property
    def default(self) -> ServerState:
        return self.servers[0]

    def server(self, name: str) -> ServerState | None:
        return next((s for s in self.servers if s.name == name), None)

    def open(self, model: str, method: str, path: str, requester: Requester | None = None,
             **request) -> PooledResponse:
        """Send a request for ``model`` to the best server, failing over to the next ones.

        GPU work for scheduled servers waits for the scheduler's grant, which names the server.
        """
        self.start()
        candidates = rank(self.servers, model, time.monotonic())
        scheduled = [s for s in candidates if s.settings.scheduling]
        if scheduled and self.admission is not None and path in SCHEDULED_PATHS:
            admitted = self._open_scheduled(requester, model, scheduled, method, path, **request)
            if admitted is not None:
                return admitted
        for i, server in enumerate(candidates):
            answer = self._try(server, self._take_slot(server), i == len(candidates) - 1, method, path,
                               requester=requester, **request)
            if answer is not None:
                return answer
        raise AssertionError("rank() returns at least one server")

    def _open_scheduled(self, requester: Requester | None, model: str, candidates: list[ServerState], method: str,
                        path: str, body: bytes, **request) -> PooledResponse | None:
        now = time.monotonic()
        candidates = [s for s in candidates if not s.cooling(now)] or candidates
        while candidates:
            admitted = self.admission.admit(requester, model, [s.name for s in candidates], body)
            if admitted is None:
                return None  # nothing schedules here (no gevent worker): sent at once
            server = self.server(admitted.server)
            candidates = [s for s in candidates if s is not server]
            # Its client is watched until Ollama answers: Ollama sends nothing, headers included, before its
            # first token, and loading the model or reading a long prompt may take a GPU many seconds.
            answer = self._try(server, self._counted(server, admitted.release), not candidates, method, path,
                               requester=requester, watched=True, body=admitted.body, **request)
            if answer is not None:
                return answer
        raise AssertionError("a scheduled request has at least one candidate")

    def _try(self, server: ServerState, release: Callable[[], None], last: bool, method: str, path: str,
             requester: Requester | None = None, watched: bool = False, **request) -> PooledResponse | None:
        """Send to one server holding its slot; None to try the next (it was unreachable or failed, and is not last).

        ``watched``: a client that leaves before Ollama answers (its headers) cancels the request.
        """
        environ = requester.environ if requester is not None else None
        note_sending(environ)
        try:
            with cancelled_if_client_leaves(environ if watched else None):
                upstream = server.backend.open(method, path, **request)
        except NOT_REACHED as exc:
            release()
            self.fail(server, exc.message)
            if last:
                raise
            return None
        except BaseException:
            release()
            raise
        if upstream.status >= 500:
            self.fail(server, f"answered status {upstream.status} to {path}")
            if not last:
                upstream.close()
                release()
                return None
        return PooledResponse(upstream, server, release)

    @staticmethod
    def _counted(server: ServerState, release_slot: Callable[[], None]) -> Callable[[], None]:
        server.in_flight += 1

        def release() -> None:
            server.in_flight -= 1
            release_slot()
        return release

    def open_on(self, server: ServerState, method: str, path: str, **request) -> PooledResponse:
        """Send a request to one named server: no failover (management, uploads)."""
        release = self._take_slot(server)
        try:
            return PooledResponse(server.backend.open(method, path, **request), server, release)
        except BaseException:
            release()
            raise

    def _take_slot(self, server: ServerState) -> Callable[[], None]:
        """Count a request in; wait for a free slot on a server at its max_concurrent."""
        slot = None
        if server.slots is not None:
            slot = server.slots.acquire(self.routing.slot_wait)
            if slot is None:
                error = Overloaded(f"Ollama server '{server.name}' is busy: {server.settings.max_concurrent} "
                                   f"requests at once, none finished within {self.routing.slot_wait:g}s "
                                   "(routing.slot_wait)")
                error.retry_after = 1
                raise error
        return self._counted(server, (lambda: Slots.release(slot)) if slot is not None else (lambda: None))

    def fail(self, server: ServerState, reason: str) -> None:
        """Pass a failing server over for ``routing.cooldown`` seconds."""
        server.last_error = reason
        server.cool_until = time.monotonic() + self.routing.cooldown
        log.warning("Ollama server '%s' passed over for %gs: %s", server.name, self.routing.cooldown, reason)

    def start(self, wait: bool = True) -> None:
        """Start this process's refresh thread, once; wait (bounded) for its first round."""
        if len(self.servers) == 1:
            return  # one server takes every request: nothing to read, no traffic of the proxy's own
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # A forked worker gets its own thread and its own counters.
                    self._first_refresh = threading.Event()
                    for server in self.servers:
                        server.in_flight = 0
                    threading.Thread(target=self._refresh_forever, name="ollama-pool", daemon=True).start()
                    self._pid = os.getpid()
        if wait:
            self._first_refresh.wait(self.routing.refresh_timeout * 2)

    def _refresh_forever(self) -> None:
        while True:
            self.refresh()
            self._first_refresh.set()
            time.sleep(self.routing.refresh_interval)

    def refresh(self) -> None:
        """Read every server's models and loaded models, side by side."""
        with ThreadPoolExecutor(max_workers=len(self.servers)) as workers:
            list(workers.map(self._refresh_one, self.servers))

    def _refresh_one(self, server: ServerState) -> None:
        try:
            tags = self.read_json(server, "/api/tags")
            ps = self.read_json(server, "/api/ps")
        except ProxyError as exc:
            if isinstance(exc, NOT_REACHED):
                self.fail(server, exc.message)
            else:
                server.last_error = exc.message
            return
        server.models = frozenset(_names(tags))
        server.loaded = frozenset(_names(ps))

    def read_json(self, server: ServerState, path: str) -> dict:
        """GET a JSON listing from one server within ``routing.refresh_timeout``."""
        timeout = self.routing.refresh_timeout
        with server.backend.open("GET", path, timeout=(timeout, timeout),
                                 timeout_setting="routing.refresh_timeout") as answer:
            answer.raise_for_error()
            return answer.json()

    def gather(self, path: str) -> list[tuple[ServerState, dict | ProxyError]]:
        """GET a listing from every server side by side: each one's answer, or its error.

        Bounded as the refresh's reads are, not by the generation timeout: one
        server that accepts connections and never answers must not stall every listing.
        """
        def one(server: ServerState) -> tuple[ServerState, dict | ProxyError]:
            try:
                answer = self.read_json(server, path)
            except ProxyError as exc:
                server.last_error = exc.message
                return server, exc
            if path == "/api/tags":
                server.models = frozenset(_names(answer))
            return server, answer
        with ThreadPoolExecutor(max_workers=len(self.servers)) as workers:
            return list(workers.map(one, self.servers))


def _names(listing: dict) -> list[str]:
    models = listing.get("models")
    if not isinstance(models, list):
        return []
    return [canonical(m.get("name") or m.get("model") or "") for m in models if isinstance(m, dict)]
