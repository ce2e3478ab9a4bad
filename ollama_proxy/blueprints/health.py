"""Answer a load balancer's probe: is the proxy up, and which backends answer?

Every Ollama server is asked for ``/api/version`` side by side, within
``service.health_timeout``; its state is ``ok``, ``cooling down`` (it answers
now, but failed a request less than ``routing.cooldown`` seconds ago, so
requests pass it over) or ``down``; ``last_error`` is its most recent failure,
this probe's, a request's or a model-list read's. Providers are not called (a
probe must not spend a paid API's quota): they are listed as configured. The
answer is 503 when no Ollama server answers: the proxy can then serve no
local model.

Anyone may ask (a load balancer carries no token) and learns only the status:
``ok``, ``degraded`` or ``down``. The backends' URLs, versions and errors are
for a caller with a valid token or managed key. A worker reuses its last probe
for ``service.health_cache_seconds``, so that calling /health in a loop cannot
multiply the traffic it sends to the Ollama servers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request

from ollama_proxy import __version__
from ollama_proxy.access import auth
from ollama_proxy.config import ProviderSettings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.routes import router

bp = Blueprint("health", __name__)
_EXTENSION = "ollama_proxy.health_probes"
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")


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


@bp.record_once
def _init(state) -> None:
    seconds = state.app.config["SETTINGS"].service.health_cache_seconds
    state.app.extensions[_EXTENSION] = ProbeCache(seconds)


@bp.get("/health")
def health():
    """Report the status, and to a token holder every backend's, 503 when no Ollama server answers."""
    body, status = report()
    return jsonify(body if _token_holder() else {"status": body["status"]}), status


def report() -> tuple[dict, int]:
    """Return the full report (the admin page's backends too) and its status code."""
    pool = router().pool
    pool.start(wait=False)
    settings = current_app.config["SETTINGS"]
    upstreams = current_app.extensions[_EXTENSION].get(lambda: _probe_all(pool.servers, settings.service))
    upstreams = [*upstreams, *(_provider(provider) for provider in settings.providers)]
    status = overall_status(upstreams)
    return {"status": status, "version": __version__, "upstreams": upstreams}, 503 if status == "down" else 200


def overall_status(upstreams: list[dict]) -> str:
    """``down`` when no Ollama server answers, ``ok`` when every backend does, else ``degraded``."""
    if not any(u["type"] == "ollama" and u["ok"] for u in upstreams):
        return "down"
    return "ok" if all(u["state"] in ("ok", "configured") for u in upstreams) else "degraded"


def without_password(url: str) -> str:
    """Blank the user and password a URL may carry."""
    return _URL_USERINFO.sub(r"\1***@", url)


def _token_holder() -> bool:
    """Tell whether the request carries a valid token or managed key (never refusing it: /health is public)."""
    token = auth.token_from_headers(request.headers)
    if token is None:
        return False
    if current_app.extensions["ollama_proxy.tokens"].find(token) is not None:
        return True
    try:
        return current_app.extensions["ollama_proxy.keys"].find(token, datetime.now(timezone.utc)) is not None
    except ProxyError:  # a disabled or expired key, or the key store down: the public answer
        return False


def _probe_all(servers, service) -> list[dict]:
    timeout = service.health_timeout
    with ThreadPoolExecutor(max_workers=len(servers)) as probes:
        return list(probes.map(lambda server: _probe(server, timeout, time.monotonic()), servers))


def _probe(server, timeout: float, now: float) -> dict:
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
    upstream["models"] = len(server.models)
    return upstream


def _provider(provider: ProviderSettings) -> dict:
    return {"name": provider.name, "type": "openai", "url": without_password(provider.base_url), "ok": True,
            "state": "configured", "last_error": None, "models": len(provider.models)}


def _version(body: bytes) -> str | None:
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None
