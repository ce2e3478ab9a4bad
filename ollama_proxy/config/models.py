"""Declare the ``models:`` section of the configuration: aliases, overrides, global defaults.

The form is a contract that other tooling writes::

    models:
      aliases: {gpt-4o: "llama3.2:latest"}
      overrides:
        "qwen3:8b": {defaults: {num_ctx: 32768, think: true}, enforce: {num_predict: 4096}}
      defaults: {keep_alive: "30m"}

Fields are in Ollama's terms: ``think``, ``keep_alive`` and
``exclude_reasoning`` go at the top of the request, ``timeout`` (seconds) is the
model's read timeout, anything else goes into ``options``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from ollama_proxy.config.checks import NonEmpty
from ollama_proxy.config.declare import setting

TIMEOUT = "timeout"


def check_fields(values: dict[str, Any]) -> None:
    """Refuse what cannot be a request field: a non-string name, a bad timeout."""
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"field names are non-empty strings, not {name!r}")
        if name == TIMEOUT and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValidationError(f"{TIMEOUT} is a number of seconds above 0")


@dataclass(frozen=True)
class ModelOverride:
    defaults: dict[str, Any] = setting({}, validate=check_fields, help="fields applied when the request lacks them")
    enforce: dict[str, Any] = setting({}, validate=check_fields, help="fields applied whatever the request says")


@dataclass(frozen=True)
class ModelsSettings:
    aliases: dict[NonEmpty, NonEmpty] = setting(
        {}, help="names clients may use for a model: `{alias: model}`; listings show them as models, answers carry "
                 "the name the client used. A bare name means its `:latest` tag; an alias names a model, never "
                 "another alias")
    overrides: dict[NonEmpty, ModelOverride] = setting(
        {}, help="per-model `defaults` and `enforce` fields, in Ollama's terms: `think`, `keep_alive`, "
                 "`exclude_reasoning` go at the top of the request, `timeout` (seconds) is the model's read timeout, "
                 "anything else (`num_ctx`, `temperature`, `num_predict` ...) goes into `options`. They apply on "
                 "every surface, after translation: OpenAI and Anthropic clients, which cannot send `num_ctx`, "
                 "get it too")
    defaults: dict[str, Any] = setting(
        {}, validate=check_fields,
        help="fields every request gets when neither it nor its model sets them. Precedence: `enforce` > "
             "request > the model's `defaults` > these")
