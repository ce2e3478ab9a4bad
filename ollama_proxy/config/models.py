"""Declare the ``models:`` section of the configuration: aliases, overrides, global defaults.

Part of ``config.py``, kept apart to keep each module small. The form is a
contract that other tooling writes::

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

from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate

from ollama_proxy.config.backends import StrictSchema

TIMEOUT = "timeout"


@dataclass(frozen=True)
class ModelOverride:
    defaults: dict[str, Any] = field(default_factory=dict)  # applied when the request lacks the field
    enforce: dict[str, Any] = field(default_factory=dict)  # applied whatever the request says


@dataclass(frozen=True)
class ModelsSettings:
    aliases: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, ModelOverride] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


def check_fields(values: dict[str, Any]) -> None:
    """Refuse what cannot be a request field: a non-string name, a bad timeout."""
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"field names are non-empty strings, not {name!r}")
        if name == TIMEOUT and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValidationError(f"{TIMEOUT} is a number of seconds above 0")


class OverrideSchema(StrictSchema):
    defaults = fields.Dict(keys=fields.String(), load_default=dict, validate=check_fields,
                           metadata={"help": "fields applied when the request lacks them"})
    enforce = fields.Dict(keys=fields.String(), load_default=dict, validate=check_fields,
                          metadata={"help": "fields applied whatever the request says"})

    @post_load
    def build(self, data, **kwargs):
        return ModelOverride(data["defaults"], data["enforce"])


class ModelsSchema(StrictSchema):
    aliases = fields.Dict(keys=fields.String(validate=validate.Length(min=1)),
                          values=fields.String(validate=validate.Length(min=1)), load_default=dict,
                          metadata={"help": "names clients may use for a model: alias -> model"})
    overrides = fields.Dict(keys=fields.String(validate=validate.Length(min=1)),
                            values=fields.Nested(OverrideSchema), load_default=dict,
                            metadata={"help": "per-model defaults and enforced fields"})
    defaults = fields.Dict(keys=fields.String(), load_default=dict, validate=check_fields,
                           metadata={"help": "fields every request gets when neither it nor its model sets them"})

    @post_load
    def build(self, data, **kwargs):
        return ModelsSettings(data["aliases"], data["overrides"], data["defaults"])
