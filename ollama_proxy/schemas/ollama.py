"""Check native Ollama request bodies before they are forwarded.

Unknown fields are kept (``unknown = INCLUDE``): Ollama grows new fields often,
and the proxy forwards the client's bytes, so it must not refuse what it does
not know. Only values Ollama would refuse anyway are refused here: a wrong JSON
type or a missing required field. ``null`` is accepted where Ollama's Go
decoder reads it as the zero value.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from ollama_proxy.schemas.fields import Typed, boolean, obj, string

_name = validate.Length(min=1, error="must not be empty")


class OllamaBody(Schema):
    class Meta:
        unknown = INCLUDE


class Message(OllamaBody):
    role = string(required=True, validate=_name)
    content = string(allow_none=True)
    thinking = string(allow_none=True)
    images = fields.List(string(), allow_none=True)
    tool_calls = fields.List(obj(), allow_none=True)
    tool_name = string(allow_none=True)


class _ModelBody(OllamaBody):
    """A body naming a model; older clients say ``name`` instead of ``model``."""

    model = string(validate=_name)
    name = string(validate=_name)
    stream = boolean(allow_none=True)
    keep_alive = Typed(str, float, allow_none=True)
    options = obj(allow_none=True)

    @validates_schema
    def needs_model(self, data, **kwargs):
        if not data.get("model") and not data.get("name"):
            raise ValidationError("model is required", "model")


class GenerateRequest(_ModelBody):
    prompt = string(allow_none=True)
    suffix = string(allow_none=True)
    system = string(allow_none=True)
    template = string(allow_none=True)
    images = fields.List(string(), allow_none=True)
    format = Typed(str, dict, allow_none=True)
    raw = boolean(allow_none=True)
    think = Typed(bool, str, allow_none=True)
    context = fields.List(fields.Integer(strict=True), allow_none=True)


class ChatRequest(_ModelBody):
    messages = fields.List(fields.Nested(Message), allow_none=True)
    tools = fields.List(obj(), allow_none=True)
    format = Typed(str, dict, allow_none=True)
    think = Typed(bool, str, allow_none=True)


class EmbedRequest(_ModelBody):
    input = Typed(str, list, required=True)
    truncate = boolean(allow_none=True)
    dimensions = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))

    @validates_schema
    def input_strings(self, data, **kwargs):
        if isinstance(data.get("input"), list) and not all(isinstance(i, str) for i in data["input"]):
            raise ValidationError("must be a string or an array of strings", "input")


class EmbeddingsRequest(_ModelBody):
    prompt = string(allow_none=True)


class ShowRequest(_ModelBody):
    verbose = boolean(allow_none=True)


class PullRequest(_ModelBody):
    insecure = boolean(allow_none=True)


class CreateRequest(_ModelBody):
    # "from" is a Python keyword: declared under another attribute name.
    from_ = string(data_key="from", allow_none=True)
    files = obj(allow_none=True)
    adapters = obj(allow_none=True)
    template = string(allow_none=True)
    system = string(allow_none=True)
    parameters = obj(allow_none=True)
    messages = fields.List(fields.Nested(Message), allow_none=True)
    quantize = string(allow_none=True)


class DeleteRequest(_ModelBody):
    pass


class CopyRequest(OllamaBody):
    source = string(required=True, validate=_name)
    destination = string(required=True, validate=_name)


# Path -> schema of its body, for every native endpoint that takes one.
BODY_SCHEMAS: dict[str, Schema] = {
    "/api/generate": GenerateRequest(),
    "/api/chat": ChatRequest(),
    "/api/embed": EmbedRequest(),
    "/api/embeddings": EmbeddingsRequest(),
    "/api/show": ShowRequest(),
    "/api/pull": PullRequest(),
    "/api/push": PullRequest(),
    "/api/create": CreateRequest(),
    "/api/delete": DeleteRequest(),
    "/api/copy": CopyRequest(),
}
