"""Read model names as Ollama reads them, so that a name means one model everywhere.

Ollama reads ``[host/][namespace/]model[:tag]`` from the right (``ParseName`` in
its ``types/model/name.go``): the tag is what follows the last ``:`` after the
last ``/``, so in ``registry:5000/m`` the ``:5000`` is a port and ``m`` has no
tag; then ``/`` parts off the model, the namespace, and the host (all that is
left, less any ``https://``). A part not given takes Ollama's default: host
``registry.ollama.ai``, namespace ``library``, tag ``latest``. Two names are the
same model when every part is equal ignoring case (``Name.EqualFold``), and a
requested name is read without the spaces around it.

Aliases, overrides, a key's or a server's model patterns, merged listings and
the pool's choice of server all compare names through ``canonical``. A name
that goes to a provider (``provider:model``, ``provider/model``) is compared the
same way, but which provider it goes to is read from the name as written
(``split_provider``): provider names are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
PROVIDER_SEPARATORS = (":", "/")


def _parts(name: str) -> tuple[str | None, str | None, str, str | None]:
    """Split a name into (host, namespace, model, tag) as Ollama does; None for a part not given.

    A part whose separator is there but which is empty (``m:``, ``/m``) is
    ``""``, not None: Ollama refuses such a name, so no default stands in for it.
    """
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
    rest, slash, model = name.rpartition("/")
    if not slash:
        return None, None, model, tag
    host, slash, namespace = rest.rpartition("/")
    if not slash:
        return None, namespace, model, tag
    _, scheme, after_scheme = host.partition("://")
    return (after_scheme if scheme else host), namespace, model, tag


@lru_cache(maxsize=4096)  # each request compares its model's name several times
def canonical(name: str) -> str:
    """Return the form of a model name every comparison uses: as ``/api/tags`` lists it, in lower case.

    - the tag is ``latest`` when none is given: ``llama3.2`` is ``llama3.2:latest``;
      a host's port is no tag: ``registry:5000/m`` is ``registry:5000/m:latest``;
    - the default host and namespace are left out, as Ollama lists names:
      ``registry.ollama.ai/library/llama3.2`` and ``library/llama3.2`` are
      ``llama3.2:latest``; another namespace stays (``mattw/x:latest``), and
      with another host, so does ``library`` (``example.com/library/m:latest``);
    - case is ignored: ``Llama3.2:Latest`` is ``llama3.2:latest``;
    - spaces around the name are dropped; an empty name stays empty;
    - nothing else is interpreted: an empty part stays empty (``m:``), and a
      suffix such as ``:cloud`` or ``@sha256:...`` reads as Ollama reads it, as
      part of the tag or the model.
    """
    name = name.strip()
    if not name:
        return ""
    host, namespace, model, tag = _parts(name)
    host = DEFAULT_HOST if host is None else host
    namespace = DEFAULT_NAMESPACE if namespace is None else namespace
    if host.lower() != DEFAULT_HOST:
        prefix = f"{host}/{namespace}/"
    elif namespace.lower() != DEFAULT_NAMESPACE:
        prefix = f"{namespace}/"
    else:
        prefix = ""
    return f"{prefix}{model}:{DEFAULT_TAG if tag is None else tag}".lower()


def is_cloud_model(name: str) -> bool:
    """Tell whether a model runs on ollama.com rather than on the Ollama server: its tag is ``cloud`` or ``*-cloud``.

    Read on the canonical name, so ``Gpt-OSS:120B-Cloud`` and
    ``registry.ollama.ai/library/x:cloud`` are cloud models too.
    """
    tag = canonical(name).rpartition(":")[2]
    return tag == "cloud" or tag.endswith("-cloud")


def same_model(name: str, other: str) -> bool:
    """Tell whether two names name the same model."""
    return canonical(name) == canonical(other)


def matches(name: str, pattern: str) -> bool:
    """Tell whether a glob pattern (a key's or a server's ``models``) names the model ``name``.

    The pattern, in lower case, is matched against the canonical name and, when
    its tag is the default, against that name without it: ``llama3*``,
    ``Llama3.2`` and ``llama3.2:latest`` all name ``llama3.2``, and ``qwen3:*``
    names ``qwen3``. Patterns are written as the listing shows names.

    A pattern that begins with a name and has no ``/`` names models of Ollama's
    library only: ``llama3*`` does not name ``llama3.2/library/qwen3:8b``, which
    Ollama reads as ``qwen3:8b`` from a host called ``llama3.2``. A namespace or a
    host is named in the pattern (``mattw/*``), or the pattern begins with a
    wildcard (``*:q4_k_m``).
    """
    full = canonical(name)
    short = full.removesuffix(":" + DEFAULT_TAG)
    pattern = pattern.lower()
    if "/" in full and "/" not in pattern and not pattern.startswith(("*", "?", "[")):
        return False
    return fnmatchcase(full, pattern) or fnmatchcase(short, pattern)


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """Tell whether any of the patterns names the model ``name``."""
    return any(matches(name, pattern) for pattern in patterns)


def split_provider(name: str, providers: Mapping) -> tuple[str, str] | None:
    """Return (provider, upstream model) when ``name`` names a configured provider, else None.

    ``provider:model`` and ``provider/model`` go to the provider, asked for the
    rest as written; the provider's name must be written exactly as configured.
    """
    for separator in PROVIDER_SEPARATORS:
        prefix, found, rest = name.partition(separator)
        if found and rest and prefix in providers:
            return prefix, rest
    return None
