"""Declare the ``backends:``, ``retry:`` and ``routing:`` sections of the configuration.

Part of ``config.py``, kept apart to keep each module small: the schemas and
settings types of the upstreams the proxy routes to. Nothing here reads the
environment; ``config.py`` fills in API keys and default timeouts after loading.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate

from ollama_proxy.backends.presets import PRESETS

DEFAULT_SERVER = "default"  # the name of service.base_url among the backends
CAPABILITIES = ("completion", "tools", "vision", "thinking", "embedding", "insert")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
SECONDS = validate.Range(min=0, min_inclusive=False)
PROVIDER_POOL_SIZE = 100  # pooled connections to one provider per worker process
MODELS_CACHE_SECONDS = 300.0  # how long a provider's GET /models answer is kept


@dataclass(frozen=True)
class OllamaServerSettings:
    name: str
    base_url: str
    max_concurrent: int | None
    models: tuple[str, ...]  # glob patterns; empty: any model the server has


@dataclass(frozen=True)
class ModelFacts:
    context_length: int | None
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    base_url: str  # the preset's when only a preset is named; no trailing slash
    preset: str | None
    api_key: str | None = field(repr=False)
    api_key_env: str | None
    models: tuple[str, ...]
    headers: dict[str, str]
    model_facts: dict[str, ModelFacts]
    connect_timeout: float
    read_timeout: float
    stream_idle_timeout: float
    pool_size: int = PROVIDER_POOL_SIZE
    models_cache_seconds: float = MODELS_CACHE_SECONDS
    organization: str | None = field(default=None, repr=False)  # sent as OpenAI-Organization
    project: str | None = field(default=None, repr=False)  # sent as OpenAI-Project


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 3
    total_timeout: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0


@dataclass(frozen=True)
class RoutingSettings:
    refresh_interval: float = 10.0
    refresh_timeout: float = 5.0
    cooldown: float = 30.0
    slot_wait: float = 30.0


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key must stop the start, not be ignored

    @pre_load
    def refuse_unknown_keys(self, data, **kwargs):
        """Refuse keys this section does not know, suggesting the nearest one it does."""
        if isinstance(data, dict):
            known = [field.data_key or name for name, field in self.load_fields.items()]
            unknown = {key: [unknown_field(key, known)] for key in data if key not in known}
            if unknown:
                raise ValidationError(unknown)
        return data


def unknown_field(key, known: list[str]) -> str:
    """Say that ``key`` is not a known key, naming the nearest known one if any is close."""
    nearest = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f"Unknown field; did you mean '{nearest[0]}'?" if nearest else "Unknown field."


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValidationError("letters, digits, '_', '.' and '-' only")
    if name == DEFAULT_SERVER:
        raise ValidationError(f"'{DEFAULT_SERVER}' is service.base_url's name; choose another")


def _url() -> fields.Url:
    return fields.Url(require_tld=False, schemes={"http", "https"})


class OllamaServerSchema(StrictSchema):
    name = fields.String(required=True, validate=_check_name)
    type = fields.String(required=True, validate=validate.Equal("ollama"))
    base_url = _url()
    max_concurrent = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1),
                                    metadata={"help": "requests sent to this server at once; more wait"})
    models = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list,
                         metadata={"help": "glob patterns of the only models routed here"})

    @post_load
    def build(self, data, **kwargs):
        if "base_url" not in data:
            raise ValidationError("Missing data for required field.", "base_url")
        return OllamaServerSettings(data["name"], data["base_url"].rstrip("/"), data["max_concurrent"],
                                    tuple(data["models"]))


class ModelFactsSchema(StrictSchema):
    context_length = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    capabilities = fields.List(fields.String(validate=validate.OneOf(CAPABILITIES)), load_default=list)

    @post_load
    def build(self, data, **kwargs):
        return ModelFacts(data["context_length"], tuple(data["capabilities"]))


class ProviderSchema(StrictSchema):
    name = fields.String(required=True, validate=_check_name)
    type = fields.String(required=True, validate=validate.Equal("openai"))
    preset = fields.String(load_default=None, validate=validate.OneOf(sorted(PRESETS)))
    base_url = _url()
    api_key_env = fields.String(load_default=None, validate=validate.Length(min=1),
                                metadata={"help": "the environment variable holding the API key"})
    models = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    headers = fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.String(),
                          load_default=dict, metadata={"help": "extra headers sent with every request"})
    model_facts = fields.Dict(keys=fields.String(), values=fields.Nested(ModelFactsSchema), load_default=dict)
    # Only these reach the provider as OpenAI-Organization and OpenAI-Project: a client's own are dropped.
    organization = fields.String(load_default=None, validate=validate.Length(min=1),
                                 metadata={"help": "sent as OpenAI-Organization with every request"})
    project = fields.String(load_default=None, validate=validate.Length(min=1),
                            metadata={"help": "sent as OpenAI-Project with every request"})
    # Unset: the service's timeouts (config.py fills them in).
    connect_timeout = fields.Float(load_default=None, validate=SECONDS)
    read_timeout = fields.Float(load_default=None, validate=SECONDS)
    stream_idle_timeout = fields.Float(load_default=None, validate=SECONDS)
    pool_size = fields.Integer(load_default=PROVIDER_POOL_SIZE, strict=True, validate=validate.Range(min=1),
                               metadata={"help": "pooled connections to the provider per worker process"})
    models_cache_seconds = fields.Float(load_default=MODELS_CACHE_SECONDS, validate=validate.Range(min=0),
                                        metadata={"help": "seconds the provider's GET /models answer is kept"})

    @post_load
    def build(self, data, **kwargs):
        base_url = data.get("base_url") or (PRESETS[data["preset"]].base_url if data["preset"] else None)
        if base_url is None:
            raise ValidationError("name a preset or a base_url", "base_url")
        return ProviderSettings(
            name=data["name"], base_url=base_url.rstrip("/"), preset=data["preset"], api_key=None,
            api_key_env=data["api_key_env"], models=tuple(data["models"]), headers=data["headers"],
            model_facts=data["model_facts"], connect_timeout=data["connect_timeout"],
            read_timeout=data["read_timeout"], stream_idle_timeout=data["stream_idle_timeout"],
            pool_size=data["pool_size"], models_cache_seconds=data["models_cache_seconds"],
            organization=data["organization"], project=data["project"])


_KINDS = {"ollama": OllamaServerSchema, "openai": ProviderSchema}


class BackendField(fields.Field):
    """One ``backends:`` entry, checked by the schema its ``type`` names."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("a backend is a mapping with a name and a type")
        schema = _KINDS.get(value.get("type"))
        if schema is None:
            raise ValidationError({"type": [f"must be one of: {', '.join(_KINDS)}"]})
        return schema().load(value)


def _unique_names(backends: list) -> None:
    names = [b.name for b in backends]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(f"backend names must be unique: {', '.join(twice)}")


def backends_field() -> fields.List:
    """Return the field of the ``backends:`` list."""
    return fields.List(BackendField(), load_default=list, validate=_unique_names,
                       metadata={"help": "more Ollama servers and OpenAI-compatible providers"})


class RetrySchema(StrictSchema):
    attempts = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1),
                              metadata={"help": "tries of a provider request before its first byte"})
    total_timeout = fields.Float(load_default=30.0, validate=SECONDS,
                                 metadata={"help": "seconds all tries of one request may take"})
    backoff = fields.Float(load_default=0.5, validate=validate.Range(min=0),
                           metadata={"help": "seconds before the second try; doubled each time"})
    max_backoff = fields.Float(load_default=8.0, validate=validate.Range(min=0),
                               metadata={"help": "longest wait between two tries"})

    @post_load
    def build(self, data, **kwargs):
        return RetrySettings(**data)


class RoutingSchema(StrictSchema):
    refresh_interval = fields.Float(load_default=10.0, validate=SECONDS,
                                    metadata={"help": "seconds between two reads of each server's models"})
    refresh_timeout = fields.Float(load_default=5.0, validate=SECONDS,
                                   metadata={"help": "seconds a server has to list its models"})
    cooldown = fields.Float(load_default=30.0, validate=validate.Range(min=0),
                            metadata={"help": "seconds a failed server is passed over"})
    slot_wait = fields.Float(load_default=30.0, validate=validate.Range(min=0),
                             metadata={"help": "longest wait for a free slot at max_concurrent; then 503"})

    @post_load
    def build(self, data, **kwargs):
        return RoutingSettings(**data)
