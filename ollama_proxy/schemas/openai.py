"""Check the shape of OpenAI request bodies before they are translated.

Only the skeleton is checked here (a model name, the field that carries the
input); the translators check the rest field by field and name the ``param``.
Unknown fields are kept (``unknown = INCLUDE``): they are passed on to Ollama,
which ignores what it does not know.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from ollama_proxy.schemas.fields import Typed, obj, string

_name = validate.Length(min=1, error="must not be empty")


class OpenAIBody(Schema):
    class Meta:
        unknown = INCLUDE

    model = string(required=True, validate=_name)


class ChatCompletionRequest(OpenAIBody):
    messages = fields.List(obj(), required=True, validate=validate.Length(min=1, error="must not be empty"))


class CompletionRequest(OpenAIBody):
    prompt = Typed(str, list, required=True)


class EmbeddingsRequest(OpenAIBody):
    input = Typed(str, list, required=True)


class ResponsesRequest(OpenAIBody):
    input = Typed(str, list, required=True)
