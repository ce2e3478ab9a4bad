"""The Ollama servers as this worker knows them: which models each has and has loaded, which is failing.

Each worker process keeps its own view of the servers: the models each lists
(``/api/tags``) and has loaded (``/api/ps``), read again every
``routing.refresh_interval`` seconds by one background thread (a greenlet
under gevent), started as the worker starts (``learn_models``, from gunicorn's
``post_worker_init``) or on first use, never at import: the Backends page and
/health know each server's models from the start, not once a request was routed. A server that refuses
the connection or answers 5xx before the first byte is passed over (``fail``)
for ``routing.cooldown`` seconds. Which server a request goes to, and when, is
the dispatcher's decision (``dispatch.dispatcher``), in ``pool_servers.rank``'s
order: a model no server lists goes to the default server, so Ollama's own 404
(or its pull-on-demand behaviour) is unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.backends.pool_servers import PoolServer
from ollama_proxy.backends.slots import Slots
from ollama_proxy.config import DEFAULT_SERVER, OllamaServerSettings, RoutingSettings, ServiceSettings
from ollama_proxy.errors import Overloaded, ProxyError, UpstreamConnectTimeout, UpstreamUnavailable
from ollama_proxy.routing.names import canonical

log = logging.getLogger(__name__)
# Failures that prove the request never reached the server: safe to send elsewhere.
NOT_REACHED = (UpstreamUnavailable, UpstreamConnectTimeout)


def _lock_slots(directory: str, server: OllamaServerSettings) -> Slots | None:
    """Lock-file slots bound a server at max_concurrent when the scheduler does not (scheduling off)."""
    return Slots(directory, server.name, server.max_concurrent) if server.max_concurrent and not server.scheduling \
        else None


class OllamaPool:
    """The default server (``service.base_url``) and every ``type: ollama`` backend."""

    def __init__(self, service: ServiceSettings, servers: tuple[OllamaServerSettings, ...],
                 routing: RoutingSettings, slot_dir: str):
        default = OllamaServerSettings(DEFAULT_SERVER, service.base_url, service.max_concurrent, (),
                                       service.num_parallel, service.max_loaded_models,
                                       model_num_parallel=service.model_num_parallel,
                                       prompt_cache_mib=service.prompt_cache_mib, scheduling=service.scheduling,
                                       teams=service.teams, lend_idle=service.lend_idle)
        self.routing = routing
        self.servers = [PoolServer(s, OllamaBackend(replace(service, base_url=s.base_url), s.name),
                                    slots=_lock_slots(slot_dir, s)) for s in (default, *servers)]
        self._lock = threading.Lock()
        self._pid = 0
        self._first_refresh = threading.Event()

    @property
    def default(self) -> PoolServer:
        return self.servers[0]

    def server(self, name: str) -> PoolServer | None:
        return next((s for s in self.servers if s.name == name), None)

    def take_slot(self, server: PoolServer) -> Callable[[], None]:
        """Wait for one of a server's lock-file slots at its max_concurrent (scheduling off); return its release."""
        if server.slots is None:
            return _nothing
        slot = server.slots.acquire(self.routing.slot_wait)
        if slot is None:
            error = Overloaded(f"Ollama server '{server.name}' is busy: {server.settings.max_concurrent} "
                               f"requests at once, none finished within {self.routing.slot_wait:g}s "
                               "(routing.slot_wait)")
            error.retry_after = 1
            raise error
        return lambda: Slots.release(slot)

    def fail(self, server: PoolServer, reason: str) -> None:
        """Pass a failing server over for ``routing.cooldown`` seconds."""
        server.last_error = reason
        server.cool_until = time.monotonic() + self.routing.cooldown
        log.warning("Ollama server '%s' passed over for %gs: %s", server.name, self.routing.cooldown, reason)

    @property
    def reads_models(self) -> bool:
        """Whether the servers' model lists are read: one server takes every request, so it is not."""
        return len(self.servers) > 1

    def start(self, wait: bool = True) -> None:
        """Start this process's refresh thread, once; wait (bounded) for its first round."""
        if not self.reads_models:
            return  # nothing to read, no traffic of the proxy's own
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

    def runs_remotely(self, model: str) -> bool:
        """Tell whether a server lists ``model`` as run on another host (``remote_host``), as this worker last read
        its listing (every ``refresh_interval`` with several servers, and at each listing a client asks for), or
        as ``note_remote`` noted since."""
        wanted = canonical(model)
        return any(wanted in server.remote for server in self.servers)

    def note_remote(self, server_name: str, model: str) -> None:
        """Count ``model`` as run on another host by the server ``server_name`` (a copy of a cloud model made
        through this worker), until its listing is read again."""
        server = self.server(server_name)
        if server is not None:
            server.remote = server.remote | {canonical(model)}

    def models_known(self, within: float = 0.0) -> bool:
        """Tell whether this worker has read its servers' models once, waiting up to ``within`` seconds for it
        (its first read runs in the background: ``start``)."""
        return self.reads_models and self._first_refresh.wait(within)

    def _refresh_forever(self) -> None:
        while True:
            try:
                self.refresh()
            except RuntimeError:  # the process is exiting: no new threads may start ("after interpreter shutdown")
                return
            self._first_refresh.set()
            time.sleep(self.routing.refresh_interval)

    def refresh(self) -> None:
        """Read every server's models and loaded models, side by side."""
        with ThreadPoolExecutor(max_workers=len(self.servers)) as workers:
            list(workers.map(self._refresh_one, self.servers))

    def _refresh_one(self, server: PoolServer) -> None:
        try:
            tags = self.read_json(server, "/api/tags")
            ps = self.read_json(server, "/api/ps")
        except ProxyError as exc:
            if isinstance(exc, NOT_REACHED):
                self.fail(server, exc.message)
            else:
                server.last_error = exc.message
            return
        server.models, server.remote = frozenset(_names(tags)), frozenset(_remote_names(tags))
        server.loaded = frozenset(_names(ps))

    def read_json(self, server: PoolServer, path: str) -> dict:
        """GET a JSON listing from one server within ``routing.refresh_timeout``."""
        timeout = self.routing.refresh_timeout
        with server.backend.open("GET", path, timeout=(timeout, timeout),
                                 timeout_setting="routing.refresh_timeout") as answer:
            answer.raise_for_error()
            return answer.json()

    def show(self, server: PoolServer, model: str) -> dict:
        """POST ``/api/show`` for one model to one server within ``routing.refresh_timeout``."""
        timeout = self.routing.refresh_timeout
        with server.backend.open("POST", "/api/show", body=json.dumps({"model": model}).encode(),
                                 headers={"Content-Type": "application/json"}, timeout=(timeout, timeout),
                                 timeout_setting="routing.refresh_timeout") as answer:
            answer.raise_for_error()
            return answer.json()

    def gather(self, path: str) -> list[tuple[PoolServer, dict | ProxyError]]:
        """GET a listing from every server side by side: each one's answer, or its error.

        Bounded as the refresh's reads are, not by the generation timeout: one
        server that accepts connections and never answers must not stall every listing.
        """
        def one(server: PoolServer) -> tuple[PoolServer, dict | ProxyError]:
            try:
                answer = self.read_json(server, path)
            except ProxyError as exc:
                server.last_error = exc.message
                return server, exc
            if path == "/api/tags":
                server.models, server.remote = frozenset(_names(answer)), frozenset(_remote_names(answer))
            return server, answer
        with ThreadPoolExecutor(max_workers=len(self.servers)) as workers:
            return list(workers.map(one, self.servers))


def learn_models(app) -> None:
    """Start a worker's reads of its servers' models as it starts, without waiting for them: each read is bounded
    by ``routing.refresh_timeout``, and the worker serves meanwhile."""
    pool = getattr(app, "extensions", {}).get("ollama_proxy.pool")
    if pool is not None:
        pool.start(wait=False)


def _names(listing: dict) -> list[str]:
    models = listing.get("models")
    if not isinstance(models, list):
        return []
    return [canonical(m.get("name") or m.get("model") or "") for m in models if isinstance(m, dict)]


def _remote_names(listing: dict) -> list[str]:
    """The canonical names a listing gives a ``remote_host``: Ollama runs them on that host, not on its GPUs."""
    models = listing.get("models")
    if not isinstance(models, list):
        return []
    return [canonical(m.get("name") or m.get("model") or "") for m in models
            if isinstance(m, dict) and m.get("remote_host")]


def _nothing() -> None:
    pass
