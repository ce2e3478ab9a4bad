"""Override keys of the file from ``OLLAMA_PROXY_*`` variables, as their declarations name them.

systemd units and containers set these. A list is given comma-separated; an integer
is read as one when it is digits, and anything else is left for the schema to refuse.
"""

from __future__ import annotations

import typing
from typing import Any

from ollama_proxy.config.declare import Setting, declared_settings, is_section, without_extras
from ollama_proxy.config.errors import ConfigError
from ollama_proxy.config.settings import Settings


def overridable(root: type = Settings) -> dict[str, tuple[tuple[str, ...], Setting]]:
    """Return each variable with the path of keys it overrides (``("admin", "oidc", "client_secret")``) and
    the key's declaration."""
    return _variables((), root)


def _variables(path: tuple[str, ...], section: type) -> dict[str, tuple[tuple[str, ...], Setting]]:
    found = {}
    for key in declared_settings(section):
        if is_section(key.annotation):  # a section, or a section within one (admin.oidc)
            found.update(_variables((*path, key.key), key.annotation))
        elif key.env:
            found[key.env] = ((*path, key.key), key)
    return found


_OVERRIDABLE = overridable()
ENV_OVERRIDES = {name: path for name, (path, _) in _OVERRIDABLE.items()}  # variable -> (section, ..., key)


def env_value(setting: Setting, text: str) -> Any:
    """Read a variable's text as the declared type of the key it overrides."""
    annotation, _ = without_extras(setting.annotation)
    if typing.get_origin(annotation) is tuple:
        return [item.strip() for item in text.split(",") if item.strip()]
    if annotation is int and text.strip().isdigit():
        return int(text)
    return text


def apply_env(raw: dict, environ: dict[str, str]) -> dict:
    """Return ``raw`` with the ``OLLAMA_PROXY_*`` overrides found in ``environ``."""
    merged = dict(raw)
    for name, (path, setting) in _OVERRIDABLE.items():
        if name in environ:
            target = merged
            for depth, section in enumerate(path[:-1], start=1):
                inner = target.get(section, {})
                if not isinstance(inner, dict):
                    raise ConfigError(f"{'.'.join(path[:depth])}: must be a mapping")
                target[section] = dict(inner)  # copied: the file's own mapping stays as it was
                target = target[section]
            target[path[-1]] = env_value(setting, environ[name])
    return merged


def blamed(problem: str, source: str, environ: dict[str, str]) -> str:
    """Put the name of where a bad value came from before ``section.key: message``: a variable, or the file."""
    for name, path in ENV_OVERRIDES.items():
        dotted = ".".join(path)
        if name in environ and problem.startswith((f"{dotted}:", f"{dotted}.")):
            return f"${name} ({problem})"
    return f"{source}: {problem}"
