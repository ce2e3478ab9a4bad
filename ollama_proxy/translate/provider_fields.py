"""Read and write a provider request's fields as the provider itself will read them.

Many OpenAI-compatible servers are written in Go (Ollama's own ``/v1`` among
them), and Go's ``encoding/json`` matches a key to a field in any case:
``"Stream"`` sets ``stream``, the Kelvin sign ``K`` (U+212A) folds to ``K`` and
the long s ``ſ`` (U+017F) to ``S``, and of several keys naming one field the
last one wins. So a field the proxy decides on is read here as such a server
reads it, and what the proxy writes replaces every key the server would read
as that field: nothing the client adds in another case can undo it.

OpenAI requests passed through to a provider get two rules: a stream always
asks for the usage chunk (the access log, usage records and tokens-per-minute
limits count it; the client's own wish only decides whether it sees the
chunk), and fields that let the provider pick another model than ``model``
are refused.
"""

from __future__ import annotations

from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.go_names import fold

#: OpenRouter's fallback list of models and the way it is used: the provider would run a model the
#: proxy neither checked against the key nor records, and the answer would carry the requested name.
MODEL_CHOOSING_FIELDS = ("models", "route")

def keys_read_as(body: dict, name: str) -> list[str]:
    """Return the keys of ``body`` a Go server reads as the field ``name``, in order."""
    folded = fold(name)
    return [key for key in body if fold(key) == folded]


def read_as_go(body: dict, name: str) -> Any:
    """Return the value a Go server reads for the field ``name``: the last key naming it wins."""
    keys = keys_read_as(body, name)
    return body[keys[-1]] if keys else None


def with_fields(body: dict, written: dict) -> dict:
    """Return ``body`` with ``written`` set: the keys a server would read as one of them are dropped."""
    folded = {fold(name) for name in written}
    return {**{key: value for key, value in body.items() if fold(key) not in folded}, **written}


def refuse_model_choosing(body: dict) -> None:
    """Refuse a field that lets the provider choose another model than the one named in ``model``."""
    keys = [key for name in MODEL_CHOOSING_FIELDS for key in keys_read_as(body, name)]
    if keys:
        raise InvalidRequest(f"{keys[0]} is not accepted: it lets the provider answer with another model than "
                             "the one named in model, which the proxy has not checked against your key; "
                             "send one request per model instead", param=keys[0])


def to_provider_passthrough(body: dict) -> tuple[dict, bool]:
    """Return an OpenAI body as it goes to the provider, and whether the client asked for the usage chunk.

    ``model`` is the one the route checked; a stream asks for the usage whatever the client said.
    """
    refuse_model_choosing(body)
    written = {"model": body["model"]}
    stream = read_as_go(body, "stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    if not stream:
        return with_fields(body, written), True
    options = read_as_go(body, "stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    wanted = read_as_go(options, "include_usage") is True
    written.update(stream=True, stream_options=with_fields(options, {"include_usage": True}))
    return with_fields(body, written), wanted
