"""Answer a load balancer's probe: is the proxy up, and does Ollama answer?"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app, jsonify

from ollama_proxy import __version__
from ollama_proxy.errors import ProxyError

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Report the proxy's status and its upstream's, 503 when the upstream is down."""
    backend = current_app.extensions["ollama_proxy.backend"]
    timeout = current_app.config["SETTINGS"].service.health_timeout
    started = time.perf_counter()
    upstream = {"name": backend.name, "url": backend.base_url}
    try:
        with backend.open("GET", "/api/version", timeout=(timeout, timeout)) as answer:
            body = answer.read()
        upstream["ok"] = answer.status == 200
        if upstream["ok"]:
            upstream["version"] = _version(body)
        else:
            upstream["error"] = f"Ollama answered status {answer.status}"
    except ProxyError as exc:
        upstream.update(ok=False, error=exc.message)
    upstream["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    status = "ok" if upstream["ok"] else "degraded"
    return jsonify(status=status, version=__version__, upstreams=[upstream]), 200 if upstream["ok"] else 503


def _version(body: bytes) -> str | None:
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None
