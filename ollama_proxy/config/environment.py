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


def overridable(root: type = Settings) -> dict[str, tuple[tuple[str, str], Setting]]:
    """Return each variable with the ``(section, key)`` it overrides and the key's declaration."""
    found = {}
    for section in declared_settings(root):
        if is_section(section.annotation):
            for key in declared_settings(section.annotation):
                if key.env:
                    found[key.env] = ((section.key, key.key), key)
    return found


_OVERRIDABLE = overridable()
ENV_OVERRIDES = {name: path for name, (path, _) in _OVERRIDABLE.items()}  # variable -> (section, key)


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
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for name, ((section, key), setting) in _OVERRIDABLE.items():
        if name in environ:
            target = merged.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{section}: must be a mapping")
            target[key] = env_value(setting, environ[name])
    return merged


def blamed(problem: str, source: str, environ: dict[str, str]) -> str:
    """Put the name of where a bad value came from before ``section.key: message``: a variable, or the file."""
    for name, (section, key) in ENV_OVERRIDES.items():
        if name in environ and problem.startswith((f"{section}.{key}:", f"{section}.{key}.")):
            return f"${name} ({problem})"
    return f"{source}: {problem}"
