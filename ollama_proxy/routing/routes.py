"""Turn the model a client names into a Route: which backend, asked for which model.

``provider:model`` and ``provider/model``, where ``provider`` is the name of a
configured ``type: openai`` backend, go to that provider, asked for the rest
(``openrouter/anthropic/claude-sonnet-4`` → openrouter, ``anthropic/claude-sonnet-4``).
Any other name is an Ollama model (``llama3.2``, ``hf.co/user/repo:Q4_K_M``),
served by the Ollama servers, of which the dispatcher picks one when the request
is sent. A caller whose key may not use the model is refused first; for an
alias, the model it names decides (``ModelTable.may_use``), on every surface
and in every listing alike. Management requests name models Ollama acts on as
written, so their names are judged as written (``refuse_unusable_model``). A
cloud model of the Ollama servers needs the caller's ``cloud`` permission too
(``access.cloud_models``), wherever a model is judged: by its tag, or because a
server lists it as run on another host (a local copy of a cloud model, noted at
once when made through this worker: ``note_made_from``).

Aliases resolve first (``models.aliases`` and the store's): the route goes to
the model the alias names, and keeps the name asked for, which answers carry.
The model's overrides travel on the route and are applied by ``body_for``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app

from ollama_proxy.access.cloud_models import check_cloud_use, may_use_cloud
from ollama_proxy.backends.protocols import Backend, PassthroughBackend
from ollama_proxy.config.models import ModelOverride
from ollama_proxy.errors import Forbidden, InvalidRequest
from ollama_proxy.ledger import current_caller, note_route
from ollama_proxy.routing.catalog import current_models
from ollama_proxy.routing.listings import merged_listing
from ollama_proxy.routing.names import is_cloud_model, split_provider
from ollama_proxy.routing.overrides import NO_OVERRIDE, ModelTable, apply_override

ROUTER = "ollama_proxy.router"


class OllamaModels(Protocol):
    """What sends a model's requests to the Ollama servers: ``dispatch.dispatcher.Dispatcher``."""

    def for_model(self, model: str, read_timeout: tuple[float, str] | None, enforce: dict) -> Backend:
        """The Ollama servers' backend for ``model``, its override's timeout and enforced options, for the request
        being served."""


@dataclass(frozen=True)
class Route:
    backend: Backend  # a provider backend, or the Ollama servers for the model (the dispatcher's)
    model: str  # as the client asked
    upstream_model: str  # as the backend is asked
    alias: bool = False  # the client named an alias: answers must carry its name
    override: ModelOverride = NO_OVERRIDE
    defaults: dict = field(default_factory=dict)  # models.defaults
    to_provider: bool = False  # a provider's model, not the Ollama servers'


class Router:
    """Resolve model names against the configured backends."""

    def __init__(self, pool, providers: dict[str, PassthroughBackend], dispatcher: OllamaModels):
        self.pool = pool  # the Ollama servers, for the listings (backends.pool.OllamaPool)
        self.providers = providers  # name -> provider backend
        self.dispatcher = dispatcher  # sends a model's requests to the Ollama servers

    def resolve(self, model: str, principal=None, models: ModelTable | None = None) -> Route:
        """Return the Route for ``model`` (an alias resolved), or refuse a model the caller may not use."""
        models = models or ModelTable()
        if principal is not None and not models.may_use(principal.may_use, model):
            raise Forbidden(f"{principal.said} may not use the model '{model}'", param="model")
        target = models.resolve(model)
        extra = {"alias": models.is_alias(model), "override": models.override_for(model),
                 "defaults": models.defaults}
        split = split_provider(target, self.providers)
        if split is not None:
            provider, upstream_model = split
            return Route(self.providers[provider], model, upstream_model, to_provider=True, **extra)
        check_cloud_use(principal, target, model, remote=self.remote_for(principal, target))
        backend = self.dispatcher.for_model(target, models.timeout_for(model), models.override_for(model).enforce)
        return Route(backend, model, target, **extra)

    def remote_for(self, principal, model: str) -> bool:
        """Tell whether an Ollama server runs ``model`` on another host, asked only for a caller without the cloud
        permission (for whom the answer matters)."""
        return principal is not None and not principal.cloud and self.pool.runs_remotely(model)

    def provider_named_by(self, model: str) -> str | None:
        """Return the provider a model name points at, if any (management endpoints refuse them)."""
        split = split_provider(model, self.providers)
        return split[0] if split else None


def router() -> Router:
    return current_app.extensions[ROUTER]


def resolve(model: str) -> Route:
    """Route ``model`` for the caller of the current request."""
    return router().resolve(model, current_caller(), current_models())


def visible_listing(path: str) -> dict:
    """Return the merged ``/api/tags`` or ``/api/ps`` as the current caller may see it, aliases included."""
    principal = current_caller()
    if principal is None:
        return merged_listing(router(), path, lambda model: True, current_models())
    routes = router()

    def may_use(model: str) -> bool:
        return principal.may_use(model) and (may_use_cloud(principal, model, routes.remote_for(principal, model))
                                             or routes.provider_named_by(model) is not None)
    return merged_listing(routes, path, may_use, current_models())


def note_routed(route: Route, upstream=None) -> None:
    """Put the route on the access record: the server that answered, once one has."""
    note_route(getattr(upstream, "server", None) or route.backend.name, route.upstream_model)


def body_for(route: Route, body: dict) -> dict:
    """Return the Ollama-shaped body as the route's backend must get it: its model name, its overrides.

    The one place a body is adjusted for its route; the same object when nothing changes.
    """
    return named_for(route, apply_override(body, route.override, route.defaults))


def named_for(route: Route, body: dict) -> dict:
    """Return a body (of any protocol) with the model name the route's backend knows."""
    if route.upstream_model == body.get("model"):
        return body
    return {**body, "model": route.upstream_model}


def refuse_provider_model(model, action: str) -> None:
    """Refuse a management request naming a provider's model: only Ollama servers hold models.

    ``model`` is whatever the body holds: a field the schema does not know may be
    anything, and what is not a name goes on for Ollama to judge.
    """
    provider = router().provider_named_by(model) if model and isinstance(model, str) else None
    if provider is not None:
        raise InvalidRequest(f"cannot {action} '{model}': it is a model of the provider '{provider}', "
                             "and only Ollama servers can manage models", param="model")


def note_made_from(server: str, source, made) -> None:
    """Count the model ``made`` on ``server`` from ``source`` (``/api/copy``, ``/api/create``) as the cloud model
    it is, if ``source`` is one: at once in this worker, before the server's listing says so."""
    if not (isinstance(source, str) and isinstance(made, str) and source and made):
        return
    routes = router()
    if is_cloud_model(source) or routes.pool.runs_remotely(source):
        routes.pool.note_remote(server, made)


def refuse_unusable_model(model, field: str) -> None:
    """Refuse a management request whose ``field`` names a model the caller's key may not use.

    The name is judged as written, not as an alias: Ollama acts on it as it is.
    What is not a name goes on for Ollama to judge.
    """
    principal = current_caller()
    if principal is None or not model or not isinstance(model, str):
        return
    if not principal.may_use(model):
        raise Forbidden(f"{principal.said} may not use the model '{model}' named in '{field}'", param=field)
    check_cloud_use(principal, model, field=field, remote=router().remote_for(principal, model))
