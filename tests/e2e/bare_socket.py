"""Requests over a bare socket, for what an HTTP client library will not do: hang up like a killed client."""

from __future__ import annotations

import json
import socket

from tests.e2e.conftest import GENERATE
from tests.e2e.server import ProxyServer


def post_json(proxy: ProxyServer, path: str, body: dict, timeout: float | None = None,
              request_id: str | None = None) -> socket.socket:
    """POST ``body`` as JSON with the generate token (and ``request_id``); return the socket, its answer unread."""
    payload = json.dumps(body).encode()
    named = f"X-Request-Id: {request_id}\r\n" if request_id else ""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {GENERATE}\r\n{named}"
                 f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock
