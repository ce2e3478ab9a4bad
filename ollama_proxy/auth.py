"""Decide who is calling and what they may do.

A request carries a token as ``Authorization: <token>``, ``Authorization:
Bearer <token>`` or ``x-api-key: <token>``. The token is looked up in the
configured lists (compared in constant time) and becomes a ``Principal``; the
principal's scope decides whether it may call a management endpoint.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from ollama_proxy.config import AuthSettings
from ollama_proxy.errors import Forbidden, Unauthorized
from ollama_proxy.logs import access_record

GENERATE = "generate"
MANAGE = "manage"

# Endpoints that change what the Ollama server holds: only manage tokens may call them.
MANAGE_PATHS = ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs/")
# Endpoints anyone may call: a load balancer's probe carries no token.
PUBLIC_PATHS = ("/health",)


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str

    def may(self, scope: str) -> bool:
        return self.scope == MANAGE or scope == GENERATE


class TokenTable:
    """Look tokens up without leaking, through timing, which one nearly matched."""

    def __init__(self, settings: AuthSettings):
        self._entries = [(t.secret.encode(), Principal(t.name, MANAGE)) for t in settings.manage_tokens]
        self._entries += [(t.secret.encode(), Principal(t.name, GENERATE)) for t in settings.generate_tokens]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Principal | None:
        candidate = token.encode()
        found = None
        for secret, principal in self._entries:
            # Compare with every entry, so the time taken does not tell where it matched.
            if hmac.compare_digest(secret, candidate) and found is None:
                found = principal
        return found


def token_from_headers(headers) -> str | None:
    """Return the token a request carries, or None."""
    value = headers.get("Authorization", "").strip()
    if value:
        scheme, _, rest = value.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value
    return headers.get("x-api-key", "").strip() or None


def required_scope(path: str) -> str | None:
    """Return the scope a path needs, or None if it is public."""
    if path in PUBLIC_PATHS:
        return None
    return MANAGE if path.startswith(MANAGE_PATHS) else GENERATE


def authenticate() -> None:
    """Resolve the caller into ``g.principal`` or refuse the request."""
    g.principal = None
    scope = required_scope(request.path)
    if scope is None or request.method == "OPTIONS":
        return  # CORS preflight carries no credentials by design
    token = token_from_headers(request.headers)
    if token is None:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' or 'x-api-key: <token>'")
    principal = current_app.extensions["ollama_proxy.tokens"].find(token)
    if principal is None:
        raise Unauthorized("invalid token")
    g.principal = principal
    record = access_record(request.environ)
    if record is not None:
        record.principal = principal.name
    if not principal.may(scope):
        raise Forbidden(f"token '{principal.name}' may not call {request.path}: it needs a manage token")


def init_app(app: Flask) -> None:
    app.extensions["ollama_proxy.tokens"] = TokenTable(app.config["SETTINGS"].auth)
    if not app.extensions["ollama_proxy.tokens"]:
        app.logger.warning("no tokens are configured (auth.generate_tokens, auth.manage_tokens): "
                           "every request but /health is refused with 401")
    app.before_request(authenticate)
