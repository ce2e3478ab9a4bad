"""Merge the model listings of every backend into one, as the caller may see it.

``/api/tags`` and ``/api/ps`` are read from every Ollama server side by side
(a server that fails is left out, and its error logged), then each
provider's listing is added. A model on several servers (however each spells
it: ``names.canonical``) is listed once (the first server's entry: the default
server's, then in configuration order);
models the caller's key may not use are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical
from ollama_proxy.routing.overrides import ModelTable

log = logging.getLogger(__name__)


def merge(listings: list[list[dict]], may_use: Callable[[str], bool]) -> list[dict]:
    """Return the entries of several ``models`` lists, each name once, as the caller may see them."""
    seen: set[str] = set()
    merged = []
    for entries in listings:
        for entry in entries:
            name = entry.get("name") or entry.get("model") or ""
            if canonical(name) in seen or not may_use(name):
                continue
            seen.add(canonical(name))
            merged.append(entry)
    return merged


def merged_listing(router, path: str, may_use: Callable[[str], bool], models: ModelTable | None = None) -> dict:
    """Return ``{"models": [...]}`` for ``/api/tags`` or ``/api/ps`` across every backend.

    Aliases of listed models are listed too; an alias shows when the caller
    may use the model it names (its own name grants nothing).

    Raises the default server's error when no Ollama server answered and no
    provider is configured: with one server, its failure is the caller's.
    """
    listings, first_error = [], None
    for server, answer in router.pool.gather(path):
        if isinstance(answer, ProxyError):
            log.warning("Ollama server '%s' left out of %s: %s", server.name, path, answer.message)
            first_error = first_error or answer
        else:
            listings.append(_models(answer))
    if not listings and not router.providers:
        raise first_error
    for provider in router.providers.values():
        listings.append(_provider_models(provider, path))
    models = models or ModelTable()
    entries = models.with_aliases(merge(listings, lambda name: True))
    return {"models": [e for e in entries if models.may_use(may_use, e.get("name") or e.get("model") or "")]}


def _provider_models(provider, path: str) -> list[dict]:
    try:
        return _models(provider.tags() if path == "/api/tags" else provider.ps())
    except ProxyError as exc:
        log.warning("provider '%s' left out of %s: %s", provider.name, path, exc.message)
        return []


def _models(listing: dict) -> list[dict]:
    models = listing.get("models")
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []
