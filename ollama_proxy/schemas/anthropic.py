"""Check the shape of Anthropic Messages bodies before they are translated.

Only the skeleton is checked here; the translator checks blocks, tools and
options field by field. Unknown fields are kept (``unknown = INCLUDE``) and
passed on to Ollama.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from ollama_proxy.schemas.fields import obj, string


class MessagesRequest(Schema):
    class Meta:
        unknown = INCLUDE

    model = string(required=True, validate=validate.Length(min=1, error="must not be empty"))
    messages = fields.List(obj(), required=True)
    # Anthropic requires max_tokens on every request; so does this proxy, to behave the same.
    max_tokens = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class CountTokensRequest(Schema):
    class Meta:
        unknown = INCLUDE

    model = string(required=True, validate=validate.Length(min=1, error="must not be empty"))
    messages = fields.List(obj(), required=True)
