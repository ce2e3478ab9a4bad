"""Read the YAML file, apply the environment's overrides, check it, and build ``Settings``.

Environment variables are read here and in ``environment.py``, nowhere else.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from ollama_proxy.config.backends import ProviderSettings
from ollama_proxy.config.environment import apply_env, blamed
from ollama_proxy.config.errors import ConfigError
from ollama_proxy.config.paths import PROJECT_ROOT
from ollama_proxy.config.schema import schema_for
from ollama_proxy.config.service import ServiceSettings
from ollama_proxy.config.settings import Settings

CONFIG_ENV = "OLLAMA_PROXY_CONFIG"
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "config.yaml"
# prometheus_client's own variable, read by it at import: only the environment can set it
# (deploy/gunicorn.conf.py does, before the workers start).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PROVIDER_TIMEOUTS = ("connect_timeout", "read_timeout", "stream_idle_timeout")


def _with_service_timeouts(backend, service: ServiceSettings):
    if not isinstance(backend, ProviderSettings):
        return backend
    return replace(backend, **{key: getattr(service, key) for key in _PROVIDER_TIMEOUTS
                               if getattr(backend, key) is None})


def _with_api_keys(backends: tuple, environ: dict[str, str]) -> tuple:
    """Fill each provider's API key from the variable it names; an empty one stops the start."""
    out = []
    for i, backend in enumerate(backends):
        if isinstance(backend, ProviderSettings) and backend.api_key_env:
            key = environ.get(backend.api_key_env, "").strip()
            if not key:
                raise ConfigError(f"backends.{i}.api_key_env: backend '{backend.name}' needs its API key "
                                  f"in ${backend.api_key_env}, which is unset or empty. The service reads it "
                                  "from its environment: on a VM installed as INSTALL.md says, add a line "
                                  f"{backend.api_key_env}=... to /etc/ollama-proxy/env, then systemctl restart "
                                  "ollama-proxy (a reload keeps the environment the service started with)")
            backend = replace(backend, api_key=key)
        out.append(backend)
    return tuple(out)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and messages and isinstance(messages[0], str):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def parse_settings(raw: Any, source: str = "<memory>", environ: dict[str, str] | None = None) -> Settings:
    """Check a parsed YAML document (plus environment overrides) and build Settings."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    environ = os.environ if environ is None else environ
    raw = apply_env(raw, environ)
    try:
        settings = schema_for(Settings)().load(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(blamed(line, source, environ) for line in _flatten(exc.messages))) from None
    backends = tuple(_with_service_timeouts(b, settings.service) for b in settings.backends)
    try:
        backends = _with_api_keys(backends, environ)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    metrics = replace(settings.metrics, multiproc_dir=environ.get(MULTIPROC_ENV, ""))
    return replace(settings, backends=backends, source=source, metrics=metrics)


def config_path(environ: dict[str, str] | None = None) -> Path:
    """Return the configuration file to use: $OLLAMA_PROXY_CONFIG or the default."""
    environ = os.environ if environ is None else environ
    return Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else DEFAULT_CONFIG


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Say what is wrong in a YAML text and where, without PyYAML's ``in "<unicode string>"``."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        problem = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        return f"{context} started at line {context_mark.line + 1}: {problem}"
    return problem


def _reader() -> str:
    """Say who was refused a file, and what to do: the VM's ollama-proxy command runs as the service's user."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return (f"(read as user {user}, which may not read it: make it readable to {user}, or check a copy where "
            f"{user} can read it, e.g. install -m 0640 -g {group} FILE /etc/ollama-proxy/candidate.yaml)")


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read, override and check the configuration file at ``path``."""
    path = Path(path) if path else config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror} {_reader()}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_settings(raw, str(path), environ)
