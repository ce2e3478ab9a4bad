"""Leave out the thinking a surface asked for when the routed model cannot think (``translate.thinking``).

The model's capabilities are looked up only when the translated body asks to
think because of the surface's fields (Anthropic's ``thinking``, OpenAI's
``reasoning_effort``, the Responses API's ``reasoning``), so other requests cost
nothing. The look-up is ``backends.capabilities``: per server and model, cached.
"""

from __future__ import annotations

from flask import Flask, current_app

from ollama_proxy.backends.capabilities import ModelCapabilities
from ollama_proxy.routing.routes import Route
from ollama_proxy.translate.thinking import fit_thinking, surface_asked_to_think

CAPABILITIES = "ollama_proxy.capabilities"


def init_app(app: Flask) -> None:
    app.extensions[CAPABILITIES] = ModelCapabilities(app.config["SETTINGS"].routing)


def thinking_for_route(route: Route, client_body: dict, ollama_body: dict) -> dict:
    """Return the translated body, its surface-asked ``think`` left out if the route's model cannot think."""
    if not surface_asked_to_think(client_body, ollama_body):
        return ollama_body
    capabilities: ModelCapabilities = current_app.extensions[CAPABILITIES]
    return fit_thinking(ollama_body, capabilities.of(route.backend, route.upstream_model))
