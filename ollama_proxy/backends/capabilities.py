"""Tell what a model can do: its Ollama server's ``/api/show`` capabilities, or a provider's configured facts.

An Ollama model's capabilities (``completion``, ``tools``, ``thinking`` …) are
asked of the server that would serve it (the servers in ``pool_servers.rank``'s
order, until one answers), within ``routing.refresh_timeout``, and kept per
server and model for ``routing.capabilities_cache_seconds``. A provider model's
are its ``model_facts`` from the configuration. When they cannot be known (a
provider model without configured capabilities, no server answering, a model
no server has, an Ollama too old to say) the answer is ``None``: the request
goes on as the client asked, and the upstream judges it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from ollama_proxy.backends.pool import OllamaPool
from ollama_proxy.backends.pool_servers import PoolServer, rank
from ollama_proxy.config import ProviderSettings, RoutingSettings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical

log = logging.getLogger(__name__)

Capabilities = frozenset[str]


class ModelCapabilities:
    """What each model can do, as this worker last read it."""

    def __init__(self, routing: RoutingSettings, clock: Callable[[], float] = time.monotonic):
        self.routing = routing
        self.clock = clock
        self._known: dict[tuple[str, str], tuple[float, Capabilities]] = {}  # (server, model) -> (until, read)

    def of(self, backend, model: str) -> Capabilities | None:
        """Return the capabilities of ``model`` on ``backend`` (a route's), or None when they cannot be known."""
        pool = getattr(backend, "pool", None)  # the Ollama servers' backend for a model has theirs
        if isinstance(pool, OllamaPool):
            return self._on_ollama(pool, model)
        settings = getattr(backend, "settings", None)  # a provider's
        facts = settings.model_facts.get(model) if isinstance(settings, ProviderSettings) else None
        return frozenset(facts.capabilities) if facts is not None and facts.capabilities else None

    def _on_ollama(self, pool: OllamaPool, model: str) -> Capabilities | None:
        pool.start()  # with several servers, wait (bounded) until each one's models are known
        for server in rank(pool.servers, model, time.monotonic()):
            key = (server.name, canonical(model))
            known = self._known.get(key)
            if known is not None and self.clock() < known[0]:
                return known[1]
            capabilities = self._read(server, model)
            if capabilities is not None:
                self._known[key] = (self.clock() + self.routing.capabilities_cache_seconds, capabilities)
                return capabilities
        return None

    def _read(self, server: PoolServer, model: str) -> Capabilities | None:
        """Ask one server's ``/api/show`` for the model's capabilities; None if it cannot say."""
        timeout = self.routing.refresh_timeout
        try:
            with server.backend.open("POST", "/api/show", body=json.dumps({"model": model}).encode(),
                                     headers={"Content-Type": "application/json"}, timeout=(timeout, timeout),
                                     timeout_setting="routing.refresh_timeout") as answer:
                answer.raise_for_error()
                shown = answer.json()
        except ProxyError as exc:
            log.info("capabilities of %s unknown on Ollama server '%s': %s", model, server.name, exc.message)
            return None
        capabilities = shown.get("capabilities")
        if not isinstance(capabilities, list):
            return None  # an Ollama from before capabilities were shown
        return frozenset(c for c in capabilities if isinstance(c, str))
