"""Raise one error family everywhere; render it in the caller's protocol.

Every failure the proxy reports is a ``ProxyError`` (or a subclass). Code
anywhere raises it with a plain message; the surface the client speaks decides
how it is written out:

- Ollama:    ``{"error": "message"}``
- OpenAI:    ``{"error": {"message", "type", "param", "code"}}``
- Anthropic: ``{"type": "error", "error": {"type", "message"}}``

Upstream errors keep the upstream's status and message (``UpstreamError``).
Foreign exceptions (``requests``, ``werkzeug``) are mapped to this tree at one
boundary each: the backend for HTTP client errors, the app's error handlers
for Werkzeug's HTTP exceptions.

This module imports nothing from the app, so the pure translators may raise
``InvalidRequest`` too.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error the proxy reports to a client."""

    status = 500
    retry_after: float | None = None

    def __init__(self, message: str, *, status: int | None = None,
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.param = param
        self.code = code


class InvalidRequest(ProxyError):
    """The request is malformed: bad JSON, a wrong type, a missing field."""

    status = 400


class Unauthorized(ProxyError):
    """No credentials, or credentials the proxy does not know."""

    status = 401


class Forbidden(ProxyError):
    """Known credentials that may not do this."""

    status = 403


class NotFound(ProxyError):
    """No such path or model."""

    status = 404


class MethodNotAllowed(ProxyError):
    """The path exists but not for this method."""

    status = 405


class PayloadTooLarge(ProxyError):
    """A body or header over its configured bound."""

    status = 413


class RateLimited(ProxyError):
    """Too many requests; ``retry_after`` says when to come back."""

    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UpstreamError(ProxyError):
    """The upstream answered with an error: its status and message are kept."""

    status = 502


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached (refused, reset, DNS)."""

    status = 502


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    status = 504


class UpstreamConnectTimeout(UpstreamTimeout):
    """The upstream did not accept a connection in time: the request never reached it."""


class ClientGone(ProxyError):
    """The client hung up before its request was sent on: nobody reads the answer (nginx's 499)."""

    status = 499


class Overloaded(ProxyError):
    """The proxy or its upstream has no capacity left for this request."""

    status = 503


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def to_ollama_error(error: ProxyError) -> dict:
    """Render ``error`` as Ollama's error body."""
    return {"error": error.message}


def to_openai_error(error: ProxyError) -> dict:
    """Render ``error`` as OpenAI's error body."""
    fallback = "api_error" if error.status >= 500 else "invalid_request_error"
    return {"error": {
        "message": error.message,
        "type": _OPENAI_TYPES.get(error.status, fallback),
        "param": error.param,
        "code": error.code,
    }}


def to_anthropic_error(error: ProxyError) -> dict:
    """Render ``error`` as Anthropic's error body."""
    fallback = "api_error" if error.status >= 500 else "invalid_request_error"
    return {"type": "error", "error": {
        "type": _ANTHROPIC_TYPES.get(error.status, fallback),
        "message": error.message,
    }}
