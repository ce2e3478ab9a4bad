"""Talk to one Ollama server: pooled connections, timeouts, errors mapped once.

This module and its siblings are the only ones that import ``requests`` and
``urllib3``. Every failure to send a request becomes a ``ProxyError`` here;
``upstream_response`` maps those of reading the answer.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import urllib3

from ollama_proxy.backends.connection import CheckedConnection
from ollama_proxy.backends.session import reason
from ollama_proxy.backends.upstream_response import UpstreamResponse
from ollama_proxy.backends.url_secrets import without_password
from ollama_proxy.config import ServiceSettings
from ollama_proxy.errors import UpstreamConnectTimeout, UpstreamTimeout, UpstreamUnavailable

if TYPE_CHECKING:
    from ollama_proxy.backends.protocols import OllamaShapedAnswer


def post_json(backend, path: str, body) -> OllamaShapedAnswer:
    """POST a JSON body, or what ``backend.encode`` made of one, with ``backend.open``; return the open answer, or
    raise Ollama's error. What a server and the dispatcher's model backend (``dispatch.dispatcher.OllamaModel``)
    both do, each with its own ``open``."""
    data = backend.encode(body) if isinstance(body, dict) else body
    upstream = backend.open("POST", path, body=data, headers={"Content-Type": "application/json"})
    upstream.raise_for_error()
    return upstream


class OllamaBackend:
    """One Ollama server, reached through one urllib3 connection pool per worker process.

    urllib3's pool directly, not a requests session: session merging, hooks,
    cookies and header dictionaries were a fifth of the CPU of a proxied request,
    and the proxy uses none of them.
    """

    def __init__(self, settings: ServiceSettings, name: str = "default"):
        self.name = name
        self.base_url = settings.base_url
        self.settings = settings
        self._prefix = (urllib3.util.parse_url(settings.base_url).path or "").rstrip("/")
        self._timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout)
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._pid = 0

    @property
    def describe(self) -> str:
        return f"Ollama at {without_password(self.base_url)}"

    def pool(self) -> urllib3.HTTPConnectionPool:
        """Return this process's pool (a forked worker must not share its parent's sockets)."""
        if self._pool is None or self._pid != os.getpid():
            # block=False: past pool_size, connections are opened anyway and dropped after use.
            self._pool = urllib3.connection_from_url(self.base_url, maxsize=self.settings.pool_size, block=False,
                                                     retries=False)
            if self._pool.scheme == "http":
                self._pool.ConnectionCls = CheckedConnection
            self._pid = os.getpid()
        return self._pool

    @staticmethod
    def encode(body: dict) -> bytes:
        """Serialise a body once, for every request that sends it (the n choices of one)."""
        # ASCII escapes: a lone surrogate from the client stays valid JSON instead of failing to encode.
        return json.dumps(body, separators=(",", ":")).encode()

    def post_json(self, path: str, body, model_label: str | None = None) -> OllamaShapedAnswer:
        """POST a JSON body; ``model_label`` is a provider's concern: Ollama's answers name their model themselves."""
        return post_json(self, path, body)

    def open(self, method: str, path: str, *, body=None, headers: dict[str, str] | None = None,
             query: str = "", timeout: tuple[float, float] | None = None,
             timeout_setting: str = "service.read_timeout") -> UpstreamResponse:
        """Send a request and return the open answer once its headers are in.

        ``timeout`` (connect, read) replaces the service's; ``timeout_setting``
        names the setting its read timeout comes from, for the 504's message.
        """
        url = self._prefix + path + (f"?{query}" if query else "")
        limits = urllib3.Timeout(connect=timeout[0], read=timeout[1]) if timeout else self._timeout
        if body is not None and not isinstance(body, bytes) and hasattr(body, "__len__"):
            headers = {**(headers or {}), "Content-Length": str(len(body))}  # streamed, yet not chunked
        started = time.perf_counter()
        try:
            response = self.pool().urlopen(method, url, body=body, headers=headers, retries=False, redirect=False,
                                           timeout=limits, preload_content=False, decode_content=False)
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError to urllib3, but refused
            raise UpstreamUnavailable(f"cannot reach {self.describe}: {reason(exc)}") from None
        except urllib3.exceptions.ConnectTimeoutError:
            raise UpstreamConnectTimeout(f"{self.describe} did not accept a connection within "
                                  f"{limits.connect_timeout:g}s") from None
        except urllib3.exceptions.ReadTimeoutError:
            raise UpstreamTimeout(f"{self.describe} did not answer within {limits.read_timeout:g}s "
                                  f"({timeout_setting})") from None
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach {self.describe}: {reason(exc)}") from None
        return UpstreamResponse(response, self.describe, time.perf_counter() - started,
                                self.settings.stream_idle_timeout, cut_hold=self.settings.cut_hold)
