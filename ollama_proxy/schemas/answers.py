"""Describe the answers the proxy sends, for its OpenAPI description.

These schemas are never used to load anything: they state the fields each
surface promises (the ones its official clients rely on), and the fuzzer
checks real answers against them. Fields not named here may be present.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from ollama_proxy.schemas.fields import obj


class Answer(Schema):
    class Meta:
        unknown = INCLUDE  # answers may carry more fields: the description says "at least these"


def _string(**kwargs) -> fields.String:
    return fields.String(required=True, **kwargs)


def _integer() -> fields.Integer:
    return fields.Integer(required=True)


def _objects() -> fields.List:
    return fields.List(obj(), required=True)


class OllamaError(Answer):
    error = _string()


class OpenAIErrorDetail(Answer):
    message = _string()
    type = _string()
    param = _string(allow_none=True)
    code = _string(allow_none=True)


class OpenAIError(Answer):
    error = fields.Nested(OpenAIErrorDetail, required=True)


class AnthropicErrorDetail(Answer):
    type = _string()
    message = _string()


class AnthropicError(Answer):
    type = _string(validate=validate.Equal("error"))
    error = fields.Nested(AnthropicErrorDetail, required=True)


class OllamaVersion(Answer):
    version = _string()


class OllamaModelList(Answer):
    models = _objects()


class Health(Answer):
    status = _string(validate=validate.OneOf(["ok", "degraded", "down"]))
    # Only for a caller with a token: upstream URLs, versions and errors are not for anyone on the LAN.
    version = fields.String()
    store_revision = fields.String(allow_none=True)
    upstreams = fields.List(obj())


class _Choices(Answer):
    id = _string()
    created = _integer()
    model = _string()
    choices = _objects()
    usage = obj()


class OpenAIChatCompletion(_Choices):
    object = _string(validate=validate.Equal("chat.completion"))


class OpenAICompletion(_Choices):
    object = _string(validate=validate.Equal("text_completion"))


class OpenAIEmbeddingList(Answer):
    object = _string(validate=validate.Equal("list"))
    data = _objects()
    model = _string()
    usage = obj()


class OpenAIModel(Answer):
    id = _string()
    object = _string(validate=validate.Equal("model"))
    created = _integer()
    owned_by = _string()


class OpenAIModelList(Answer):
    object = _string(validate=validate.Equal("list"))
    data = fields.List(fields.Nested(OpenAIModel), required=True)


class AnthropicMessage(Answer):
    id = _string()
    type = _string(validate=validate.Equal("message"))
    role = _string(validate=validate.Equal("assistant"))
    content = _objects()
    model = _string()
    stop_reason = _string(allow_none=True)
    usage = obj(required=True)


class AnthropicTokenCount(Answer):
    input_tokens = _integer()


class ResponsesResponse(Answer):
    id = _string()
    object = _string(validate=validate.Equal("response"))
    created_at = _integer()
    status = _string()
    model = _string()
    output = _objects()
