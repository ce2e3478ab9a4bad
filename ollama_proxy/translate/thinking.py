"""Decide whether a translated request keeps the thinking its surface asked for.

Clients of the translated surfaces ask for reasoning by default: Claude Code
sends Anthropic's ``thinking`` on every turn, whatever the model, and OpenAI
clients send ``reasoning_effort`` or ``reasoning``. Ollama refuses ``think`` for
a model without the ``thinking`` capability (400 ``"<model>" does not support
thinking``), and such a client stops at the first turn. So the ``think`` a
translator made of those fields is left out for a model that cannot think (as
Ollama's own Anthropic layer does), and the model answers without thinking.

What stays as asked:

- ``think`` written by the client itself (Ollama's own field, on any surface, and
  always on the native API): Ollama's answer to it is the client's to see;
- ``think: false`` (or ``"none"``): asking not to think needs no capability;
- a model whose capabilities are not known (``None``: a provider model without
  configured ``model_facts``, an Ollama server that did not answer
  ``/api/show``): the upstream judges.
"""

from __future__ import annotations

from collections.abc import Collection

THINKING = "thinking"


def asks_to_think(think: object) -> bool:
    """Tell whether Ollama reads a ``think`` value as turning thinking on (``true`` or a level)."""
    return think is True or think in ("low", "medium", "high", "max")


def surface_asked_to_think(client_body: dict, ollama_body: dict) -> bool:
    """Tell whether ``think`` is on in a translated body because of the surface's fields, not the client's ``think``."""
    return "think" not in client_body and asks_to_think(ollama_body.get("think"))


def fit_thinking(ollama_body: dict, capabilities: Collection[str] | None) -> dict:
    """Return the body without a ``think`` that turns thinking on when the model's known capabilities lack it."""
    if capabilities is None or THINKING in capabilities or not asks_to_think(ollama_body.get("think")):
        return ollama_body
    return {key: value for key, value in ollama_body.items() if key != "think"}
