"""Answer a load balancer's probe: is the proxy up, and which backends answer?

Every Ollama server is asked for ``/api/version`` side by side, within
``service.health_timeout``; its state is ``ok``, ``cooling down`` (it answers
now, but failed a request less than ``routing.cooldown`` seconds ago, so
requests pass it over) or ``down``; ``last_error`` is its most recent failure,
this probe's, a request's or a model-list read's. Providers are not called (a
probe must not spend a paid API's quota): they are listed as configured. The
answer is 503 when no Ollama server answers: the proxy can then serve no
local model.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, current_app, jsonify

from ollama_proxy import __version__
from ollama_proxy.config import ProviderSettings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing import router

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Report the proxy's status and every backend's, 503 when no Ollama server answers."""
    pool = router().pool
    pool.start(wait=False)
    settings = current_app.config["SETTINGS"]
    timeout = settings.service.health_timeout
    with ThreadPoolExecutor(max_workers=len(pool.servers)) as probes:
        upstreams = list(probes.map(lambda server: _probe(server, timeout, time.monotonic()), pool.servers))
    upstreams += [_provider(provider) for provider in settings.providers]
    answering = any(u["type"] == "ollama" and u["ok"] for u in upstreams)
    status = "ok" if all(u["state"] in ("ok", "configured") for u in upstreams) else "degraded"
    return jsonify(status=status, version=__version__, upstreams=upstreams), 200 if answering else 503


def _probe(server, timeout: float, now: float) -> dict:
    backend = server.backend
    started = time.perf_counter()
    upstream = {"name": server.name, "type": "ollama", "url": backend.base_url}
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
        upstream.update(ok=False, error=exc.message)
    upstream["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    upstream["state"] = "down" if not upstream["ok"] else "cooling down" if server.cooling(now) else "ok"
    if not upstream["ok"]:
        server.last_error = upstream["error"]  # kept, so the next probe still tells what went wrong last
    upstream["last_error"] = server.last_error
    upstream["models"] = len(server.models)
    return upstream


def _provider(provider: ProviderSettings) -> dict:
    return {"name": provider.name, "type": "openai", "url": provider.base_url, "ok": True, "state": "configured",
            "last_error": None, "models": len(provider.models)}


def _version(body: bytes) -> str | None:
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None
