"""One Ollama server as a worker sees it, the order to try the servers in, and an answer that frees its slot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.backends.slots import Slots
from ollama_proxy.backends.upstream_response import UpstreamResponse
from ollama_proxy.config import OllamaServerSettings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical, matches_any


def admits(patterns: tuple[str, ...], model: str) -> bool:
    """Tell whether a server's ``models`` filter lets ``model`` in (no filter: any)."""
    return not patterns or matches_any(model, patterns)


@dataclass
class PoolServer:
    """One Ollama server as this worker's pool sees it: its backend, listings, health and requests in flight."""

    settings: OllamaServerSettings
    backend: OllamaBackend
    models: frozenset[str] = frozenset()  # canonical names from /api/tags
    remote: frozenset[str] = frozenset()  # those of them it lists as run on another host: cloud models, copies too
    loaded: frozenset[str] = frozenset()  # canonical names from /api/ps
    in_flight: int = 0
    cool_until: float = 0.0  # time.monotonic() before which the server is passed over
    last_error: str | None = None
    slots: Slots | None = None  # with max_concurrent

    @property
    def name(self) -> str:
        return self.settings.name

    def cooling(self, now: float) -> bool:
        return now < self.cool_until

    def full(self) -> bool:
        limit = self.settings.max_concurrent
        return limit is not None and self.in_flight >= limit


def rank(servers: list[PoolServer], model: str, now: float) -> list[PoolServer]:
    """Order the servers to try for ``model``: best first; the default alone if none has it."""
    wanted = canonical(model)
    having = [s for s in servers if wanted in s.models and admits(s.settings.models, model)]
    if not having:
        return servers[:1]
    ready = sorted((s for s in having if not s.cooling(now)),
                   key=lambda s: (s.full(), wanted not in s.loaded, s.in_flight))
    # Cooling servers come last: tried only when every other one has failed too.
    return ready + sorted((s for s in having if s.cooling(now)), key=lambda s: s.cool_until)


class PooledResponse:
    """An answer from one server of the pool; closing it frees the server's slot."""

    def __init__(self, upstream: UpstreamResponse, server: PoolServer, release: Callable[[], None], hold=None):
        self._upstream = upstream
        self.server = server.name
        self.describe = server.backend.describe
        self._release = release
        self.hold = hold  # the GPU slot's charge (ledger.Hold), told when Ollama's figures come

    def __getattr__(self, name):
        return getattr(self._upstream, name)  # status, headers, waited, busy, iter_bytes, read ...

    def raise_for_error(self) -> None:
        try:
            self._upstream.raise_for_error()
        except ProxyError:
            self.close()
            raise

    def close(self) -> None:
        try:
            self._upstream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
