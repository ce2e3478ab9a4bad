"""Build this instance's scheduler from the settings: which servers it schedules, its bounds, its state.

One instance keeps the scheduler's state in one of its workers (``local``);
with ``ratelimit.storage_url`` a Redis, every instance shares one (``shared``),
and schedules alone on its share of the servers while Redis is away.
A server with ``scheduling: off`` is left out: its requests are sent at once.
"""

from __future__ import annotations

from cachetools import LRUCache

from ollama_proxy.config import Settings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical
from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler
from ollama_proxy.scheduler.decisions.estimates import MODELS_KEPT, Estimates
from ollama_proxy.scheduler.decisions.runners import KV_BYTES_UNKNOWN, kv_bytes_per_token, one_slot, train_context
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec, scaled
from ollama_proxy.scheduler.transport.admission import Admission
from ollama_proxy.scheduler.transport.local import LocalScheduler


def build_admission(settings: Settings, pool) -> Admission | None:
    """Return the admission of ``pool``'s scheduled servers, or None if none is scheduled."""
    scheduled = [s for s in pool.servers if s.settings.scheduling]
    if not scheduled:
        return None
    specs = [ServerSpec(s.name, s.settings.num_parallel, s.settings.max_loaded_models, s.settings.max_concurrent,
                        s.settings.prompt_cache_mib,
                        tuple((canonical(model), slots) for model, slots in s.settings.model_num_parallel.items()))
             for s in scheduled]
    conf = settings.scheduling
    bounds = Bounds.of(conf)

    def build(share: int = 1) -> Scheduler:
        """The scheduler of every server's slots, or of 1/``share`` of them (an instance alone, Redis away)."""
        return Scheduler(scaled(specs, share), bounds, Estimates(conf.slot_seconds, conf.load_seconds))

    shapes = ModelShapes(pool)

    def loaded() -> dict[str, dict[str, Loaded]]:
        return loaded_models(pool, scheduled, shapes)

    url = settings.ratelimit.redis_url
    client = {"specs": specs, "unreachable_timeout": conf.unreachable_timeout}
    if url is not None:
        from ollama_proxy.scheduler.transport.shared import SharedScheduler  # here: only then is Redis loaded

        service = SharedScheduler(url, build, conf.max_wait, loaded, settings.routing.refresh_interval,
                                  directory=settings.logging.dir, **client)
    else:
        service = LocalScheduler(settings.logging.dir, build, conf.max_wait, loaded, settings.routing.refresh_interval,
                                 **client)
    return Admission(service.client, service.resign)


def loaded_models(pool, servers, shapes: ModelShapes) -> dict[str, dict[str, Loaded]]:
    """Read each server's ``/api/ps``: model -> the reload options it runs with (its context length), and its shape."""
    found = {}
    for server in servers:
        try:
            listing = pool.read_json(server, "/api/ps")
        except ProxyError:
            continue
        models = listing.get("models") if isinstance(listing, dict) else None
        found[server.name] = {}
        for entry in models or ():
            if isinstance(entry, dict):
                name = entry.get("name") or entry.get("model") or ""
                found[server.name][canonical(name)] = Loaded(_options(entry), *shapes.of(server, name))
    return found


class ModelShapes:
    """How Ollama runs each model on each server (``runners``: its slots, a token's KV bytes), read once."""

    def __init__(self, pool) -> None:
        self._pool = pool
        self._known: LRUCache[tuple[str, str], tuple[bool, int, int | None]] = LRUCache(MODELS_KEPT)

    def of(self, server, model: str) -> tuple[bool, int, int | None]:
        """Whether ``model`` runs with one slot on ``server``, its KV bytes a token and its training context
        (unknown: the defaults)."""
        key = (server.name, canonical(model))
        known = self._known.get(key)
        if known is None:
            try:
                shown = self._pool.show(server, model)
            except ProxyError:
                return False, KV_BYTES_UNKNOWN, None  # asked again at the next read
            known = self._known[key] = ((one_slot(shown), kv_bytes_per_token(shown), train_context(shown))
                                        if isinstance(shown, dict) else (False, KV_BYTES_UNKNOWN, None))
        return known


def _options(entry: dict) -> dict:
    length = entry.get("context_length")
    return {"num_ctx": length} if isinstance(length, int) and not isinstance(length, bool) and length > 0 else {}
