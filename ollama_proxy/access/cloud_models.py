"""Say who may use cloud models: those an Ollama server runs on ollama.com, not on its own GPUs.

A cloud model (``gpt-oss:120b-cloud``, ``kimi-k2:1t-cloud``, any ``:cloud`` or
``-cloud`` tag: ``names.is_cloud_model``) is answered by the Ollama server
sending the prompt to ollama.com, under the server's own ollama.com account:
the prompt leaves the premises, and the account pays. So on top of its model
patterns a caller needs the ``cloud`` permission, a managed key's
(``keys create --allow cloud``) or a token's (``cloud: true`` in the YAML list),
as web search and fetch need ``web``. An alias is judged by the model it names.
A provider's model is none: it goes to that provider, whatever its tag.
"""

from __future__ import annotations

from ollama_proxy.errors import Forbidden
from ollama_proxy.routing.names import is_cloud_model


def may_use_cloud(principal, model: str, remote: bool = False) -> bool:
    """Tell whether ``principal`` may use ``model`` as far as the cloud goes: a local model, or the permission.

    ``remote``: an Ollama server lists the model as run on another host (``remote_host``), whatever its name
    says. So a copy of a cloud model under a local-sounding name (``/api/copy``, ``/api/create`` from one),
    which Ollama still runs on ollama.com, is a cloud model too.
    """
    return principal is None or principal.cloud or not (remote or is_cloud_model(model))


def check_cloud_use(principal, model: str, asked: str | None = None, field: str = "model",
                    remote: bool = False) -> None:
    """Refuse ``principal`` a cloud model (``model``, which ``asked`` names, if an alias) it has no permission for;
    ``remote`` as for ``may_use_cloud``."""
    if may_use_cloud(principal, model, remote):
        return
    named = f"'{model}'" if asked is None or asked == model else f"'{asked}' (an alias of '{model}')"
    raise Forbidden(f"token '{principal.name}' may not use the cloud model {named}: cloud models send the prompt to "
                    "ollama.com, under the Ollama server's account, and need the cloud permission "
                    "(`keys create --allow cloud`, or `cloud: true` on a token)", param=field)
