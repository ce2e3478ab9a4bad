"""Probe the backends for /health and the admin page: which answer, how fast, what failed last.

Every Ollama server is asked for ``/api/version`` side by side, within
``service.health_timeout``; its state is ``ok``, ``cooling down`` (it answers
now, but failed a request less than ``routing.cooldown`` seconds ago, so
requests pass it over) or ``down``; ``last_error`` is its most recent failure,
this probe's, a request's or a model-list read's. /health calls no provider (a
probe must not spend a paid API's quota, nor wait on it): a provider is listed
as configured, with the models known without asking it (its configured ones,
or its last listing's). The admin page asks each provider for its models, as
/api/tags does, and shows how long that took. The status is ``down`` (503) when
no Ollama server answers: the proxy can then serve no local model.

A worker reuses its last probe for ``service.health_cache_seconds``, so that
calling /health in a loop cannot multiply the traffic it sends to the Ollama
servers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from flask import Flask, current_app

from ollama_proxy import __version__
from ollama_proxy.backends.url_secrets import without_password
from ollama_proxy.errors import ProxyError

if TYPE_CHECKING:
    from ollama_proxy.backends.openai_compat import ProviderBackend
    from ollama_proxy.backends.pool import OllamaPool
    from ollama_proxy.backends.pool_servers import PoolServer

_EXTENSION = "ollama_proxy.health_probes"


class ProbeCache:
    """Keep the last probe of every Ollama server for ``seconds``; one probe at a time.

    Callers that arrive while a probe runs wait for it and share its answer.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()  # gevent's, in a gevent worker: waiting yields
        self._taken_at: float | None = None
        self._upstreams: list[dict] = []

    def get(self, probe: Callable[[], list[dict]]) -> list[dict]:
        with self._lock:
            if self._taken_at is None or self._clock() - self._taken_at >= self._seconds:
                self._upstreams = probe()
                self._taken_at = self._clock()
            return self._upstreams


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION] = ProbeCache(app.config["SETTINGS"].service.health_cache_seconds)


def report(app: Flask | None = None, ask_providers: bool = False) -> tuple[dict, int]:
    """Return every backend's state, with the overall status, and the status code /health answers with.

    ``ask_providers``: list each provider's models as /api/tags does (the admin page), not only the known ones.
    """
    app = app or current_app
    pool: OllamaPool = app.extensions["ollama_proxy.pool"]
    pool.start(wait=False)
    settings = app.config["SETTINGS"]
    timeout = settings.service.health_timeout
    # A worker just started may not have read the models yet: waited for within the probe's bound, else unknown.
    upstreams = app.extensions[_EXTENSION].get(
        lambda: probe_all(pool.servers, timeout, pool.models_known(timeout)))
    providers = app.extensions["ollama_proxy.providers"].values()
    upstreams = [*upstreams, *(_provider(provider, ask_providers) for provider in providers)]
    status = overall_status(upstreams)
    return {"status": status, "version": __version__, "upstreams": upstreams}, 503 if status == "down" else 200


def overall_status(upstreams: list[dict]) -> str:
    """``down`` when no Ollama server answers, ``ok`` when every backend does, else ``degraded``."""
    if not any(u["type"] == "ollama" and u["ok"] for u in upstreams):
        return "down"
    return "ok" if all(u["state"] in ("ok", "configured") for u in upstreams) else "degraded"


def probe_all(servers: list[PoolServer], timeout: float, models_read: bool = True) -> list[dict]:
    """Probe every server side by side, each within ``timeout`` seconds.

    ``models_read``: whether the pool has read the servers' model lists (never for a lone server, whose requests
    all go to it; not yet in a worker just started): else their number is not known, and said as null, not 0.
    """
    with ThreadPoolExecutor(max_workers=len(servers)) as probes:
        return list(probes.map(lambda server: _probe(server, timeout, time.monotonic(), models_read), servers))


def _probe(server: PoolServer, timeout: float, now: float, models_read: bool = True) -> dict:
    backend = server.backend
    started = time.perf_counter()
    upstream = {"name": server.name, "type": "ollama", "url": without_password(backend.base_url)}
    try:
        with backend.open("GET", "/api/version", timeout=(timeout, timeout),
                          timeout_setting="service.health_timeout") as answer:
            body = answer.read()
        upstream["ok"] = answer.status == 200
        if upstream["ok"]:
            upstream["version"] = _version(body)
        else:
            upstream["error"] = f"Ollama answered status {answer.status}"
    except ProxyError as exc:
        upstream.update(ok=False, error=without_password(exc.message))
    upstream["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    upstream["state"] = "down" if not upstream["ok"] else "cooling down" if server.cooling(now) else "ok"
    if not upstream["ok"]:
        server.last_error = upstream["error"]  # kept, so the next probe still tells what went wrong last
    upstream["last_error"] = None if server.last_error is None else without_password(server.last_error)
    upstream["models"] = len(server.models) if models_read else None
    return upstream


def _provider(provider: ProviderBackend, ask: bool) -> dict:
    upstream = {"name": provider.name, "type": "openai", "url": without_password(provider.base_url), "ok": True,
                "state": "configured", "last_error": None}
    try:
        models = provider.list_models() if ask else provider.known_models()
    except ProxyError as exc:
        models = None
        upstream.update(ok=False, state="down", error=without_password(exc.message))
    upstream["models"] = None if models is None else len(models)
    upstream["latency_ms"] = provider.listing_ms
    return upstream


def _version(body: bytes) -> str | None:
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None
