"""Keep tenants apart on the Ollama servers: which servers a team's request may use, and what it may be told.

llama-server shares one prompt cache per model per server among every request it runs: a request that
starts as another's did reads that start from cache, and its timing (and any cached count) shows it.
The proxy can keep teams apart only by where it sends them (``backends[].teams``), and by not adding a
cache figure of its own where the cache may hold another tenant's prompt (``shows_cache``).
"""

from __future__ import annotations

from ollama_proxy.backends.pool_servers import PoolServer
from ollama_proxy.config import OllamaServerSettings


def may_use(server: PoolServer, team: str | None) -> bool:
    """Whether a request of ``team`` (None: a key without one) may be sent to ``server``.

    A server kept to teams takes another's request only if it is lent while idle, and only while it runs
    nothing of this worker's: the other workers' requests are not seen here.
    """
    kept = server.settings.teams
    if not kept or team in kept:
        return True
    return server.settings.lend_idle and server.in_flight == 0


def usable(servers: list[PoolServer], team: str | None) -> list[PoolServer]:
    """The servers a request of ``team`` may be sent to, in their order."""
    return [server for server in servers if may_use(server, team)]


def shows_cache(settings: OllamaServerSettings, team: str | None, isolation: str) -> bool:
    """Whether a request of ``team`` is told what ``settings``' server read from its prompt cache.

    Told only where every prompt that server can hold is its own tenant's: isolation off (the operator
    shares the cache), or a server kept to the request's team alone and lent to nobody. The scheduler's
    mirror of the caches is an estimate; a figure given on its word would leak whenever it is wrong.
    """
    if isolation == "off":
        return True
    return isolation == "team" and team is not None and settings.teams == (team,) and not settings.lend_idle
