"""Answer a load balancer's probe: is the proxy up, and which backends answer?

Anyone may ask (a load balancer carries no token) and learns only the status:
``ok``, ``degraded`` or ``down`` (503: no Ollama server answers). The
backends' URLs, versions and errors (``backends.health``), the proxy's version
and the store's migration are for a caller with a valid token or managed key.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request

from ollama_proxy.access import auth
from ollama_proxy.backends import health as backend_health
from ollama_proxy.errors import ProxyError
from ollama_proxy.store import shown_revision

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Report the status, and to a token holder every backend's, 503 when no Ollama server answers."""
    body, status = backend_health.report()
    if not _token_holder():
        return jsonify({"status": body["status"]}), status
    return jsonify({"status": body["status"], "version": body["version"], "store_revision": shown_revision(),
                    "upstreams": body["upstreams"]}), status


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
