"""Declare the ``models:`` section of the configuration: aliases, overrides, global defaults.

The form is a contract that other tooling writes::

    models:
      aliases: {gpt-4o: "llama3.2:latest"}
      overrides:
        "qwen3:8b": {defaults: {num_ctx: 32768, think: true}, enforce: {num_predict: 4096}}
      defaults: {keep_alive: "30m"}

Fields are in Ollama's terms: ``think``, ``keep_alive`` and
``exclude_reasoning`` go at the top of the request, ``timeout`` (seconds) is the
model's read timeout, anything else goes into ``options``. An override's
``report_context`` is no request field: it scales the input tokens Anthropic
clients are told of (``translate.anthropic.usage``).

``token_counts`` is its own section: how the Anthropic surface learns each
model's correction to its token estimate (``translate.anthropic.correction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, validate

from ollama_proxy.config.checks import AT_LEAST_1, NonEmpty
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
    report_context: int | None = setting(
        None, validate=AT_LEAST_1,
        help="the context window Anthropic clients assume (Claude Code: 200000): their `input_tokens` "
             "(answers and count_tokens) are scaled by it ÷ the `num_ctx` the model is sent, so they compact "
             "their conversation in time. The figures are then no real tokens; the proxy's usage records, "
             "metrics and rate limits keep the real ones. Needs `num_ctx` in `defaults` or `enforce`. Off "
             "when absent; the file's value stands when the store holds an override for the model")


def check_report_context(overrides: dict[str, ModelOverride]) -> None:
    """Refuse a ``report_context`` whose model has no ``num_ctx``: the proxy could not know its window."""
    for name, override in overrides.items():
        if override.report_context and not (override.defaults.get("num_ctx") or override.enforce.get("num_ctx")):
            raise ValidationError(f"{name}: report_context needs num_ctx in the model's defaults or enforce")


@dataclass(frozen=True)
class ModelsSettings:
    aliases: dict[NonEmpty, NonEmpty] = setting(
        {}, help="names clients may use for a model: `{alias: model}`; listings show them as models, answers carry "
                 "the name the client used. A bare name means its `:latest` tag; an alias names a model, never "
                 "another alias")
    overrides: dict[NonEmpty, ModelOverride] = setting(
        {}, validate=check_report_context,
        help="per-model `defaults` and `enforce` fields, in Ollama's terms: `think`, `keep_alive`, "
             "`exclude_reasoning` go at the top of the request, `timeout` (seconds) is the model's read timeout, "
             "anything else (`num_ctx`, `temperature`, `num_predict` ...) goes into `options`. They apply on "
             "every surface, after translation: OpenAI and Anthropic clients, which cannot send `num_ctx`, "
             "get it too. `report_context` scales the input tokens Anthropic clients are told of")
    defaults: dict[str, Any] = setting(
        {}, validate=check_fields,
        help="fields every request gets when neither it nor its model sets them. Precedence: `enforce` > "
             "request > the model's `defaults` > these")


@dataclass(frozen=True)
class TokenCountSettings:
    learn: bool = setting(
        True, help="learn each model's correction to the token estimate from the `prompt_eval_count` of its "
                   "answers to `/v1/messages`")
    smoothing: float = setting(
        0.2, validate=validate.Range(min=0, max=1, min_inclusive=False),
        help="weight of the newest answer in a model's correction (a moving average; the first answer counts "
             "whole)")
    min_prompt_tokens: int = setting(
        256, validate=AT_LEAST_1,
        help="smallest estimated prompt learnt from: in shorter ones the chat template's fixed text dominates")
    max_correction: float = setting(
        4.0, validate=validate.Range(min=1, min_inclusive=False),
        help="largest correction believed, up or down: an answer further off (a prompt Ollama cut to fit its "
             "context, a template with a long prompt of its own) is not learnt from")
