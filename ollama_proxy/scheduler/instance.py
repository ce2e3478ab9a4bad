"""Build this instance's scheduler from the settings: which servers it schedules, its bounds, its state.

One instance keeps the scheduler's state in one of its workers (``local``);
with ``ratelimit.storage_url`` a Redis, every instance shares one (``shared``),
and schedules alone on its share of the servers while Redis is away.
A server with ``scheduling: off`` is left out: its requests are sent at once.
"""

from __future__ import annotations

from ollama_proxy.config import Settings
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical
from ollama_proxy.scheduler.admission import Admission
from ollama_proxy.scheduler.core import Bounds, Scheduler
from ollama_proxy.scheduler.estimates import Estimates
from ollama_proxy.scheduler.local import LocalScheduler
from ollama_proxy.scheduler.servers import ServerSpec
from ollama_proxy.scheduler.shared import SharedScheduler, scaled


def build_admission(settings: Settings, pool) -> Admission | None:
    """Return the admission of ``pool``'s scheduled servers, or None if none is scheduled."""
    scheduled = [s for s in pool.servers if s.settings.scheduling]
    if not scheduled:
        return None
    specs = [ServerSpec(s.name, s.settings.num_parallel, s.settings.max_loaded_models, s.settings.max_concurrent,
                        s.settings.multiuser_cache)
             for s in scheduled]
    conf = settings.scheduling
    bounds = Bounds.of(conf)

    def build(share: int = 1) -> Scheduler:
        """The scheduler of every server's slots, or of 1/``share`` of them (an instance alone, Redis away)."""
        return Scheduler(scaled(specs, share), bounds, Estimates(conf.slot_seconds, conf.load_seconds))

    def loaded() -> dict[str, dict[str, dict]]:
        return loaded_models(pool, scheduled)

    url = settings.ratelimit.redis_url
    client = {"specs": specs, "unreachable_timeout": conf.unreachable_timeout}
    if url is not None:
        service = SharedScheduler(url, build, conf.max_wait, loaded, settings.routing.refresh_interval,
                                  directory=settings.logging.dir, **client)
    else:
        service = LocalScheduler(settings.logging.dir, build, conf.max_wait, loaded, settings.routing.refresh_interval,
                                 **client)
    return Admission(service.client, service.resign)


def loaded_models(pool, servers) -> dict[str, dict[str, dict]]:
    """Read each server's ``/api/ps``: model -> the reload options it runs with (its context length)."""
    found = {}
    for server in servers:
        try:
            listing = pool.read_json(server, "/api/ps")
        except ProxyError:
            continue
        models = listing.get("models") if isinstance(listing, dict) else None
        found[server.name] = {canonical(m.get("name") or m.get("model") or ""): _options(m)
                              for m in models or () if isinstance(m, dict)}
    return found


def _options(entry: dict) -> dict:
    length = entry.get("context_length")
    return {"num_ctx": length} if isinstance(length, int) and not isinstance(length, bool) and length > 0 else {}
