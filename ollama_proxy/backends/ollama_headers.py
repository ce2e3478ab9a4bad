"""Choose the headers that pass between a client and an Ollama server, both ways.

The native API is passed through, so it is a blocklist: everything goes on but
what describes one connection and what the proxy owns itself.
"""

from __future__ import annotations

from collections.abc import Iterable

# Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
# ones the proxy owns: the client's credentials, Host, Origin (Ollama answers 403 to
# foreign origins), and framing, which requests recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection",
})
_NOT_FORWARDED_UP = HOP_BY_HOP | {
    "host", "origin", "referer", "authorization", "x-api-key", "cookie", "content-length", "accept-encoding",
}
_NOT_FORWARDED_DOWN = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}


def upstream_headers(client_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the client's headers that may go on to Ollama."""
    headers = {k: v for k, v in client_headers if k.lower() not in _NOT_FORWARDED_UP}
    headers["Accept-Encoding"] = "identity"  # bytes pass through as they are: no decoding
    return headers


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return Ollama's headers that may go on to the client (CORS is the proxy's own)."""
    return {k: v for k, v in upstream
            if k.lower() not in _NOT_FORWARDED_DOWN and not k.lower().startswith("access-control-")}
