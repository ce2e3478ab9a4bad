"""Describe the proxy's own API as OpenAPI 3, from its marshmallow schemas and Flask's URL map.

Every route the app serves is described: the request body with the schema
that checks it, the answers with the schemas in ``schemas.answers``, and the
errors in the dialect of the surface (Ollama, OpenAI or Anthropic). A route
this module does not know yet still appears, with a generic description, so
the document never lags behind the URL map. The admin pages are left out: they
are a website for people, not part of the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from ollama_proxy import __version__
from ollama_proxy.schemas import answers, anthropic, openai
from ollama_proxy.schemas.fields import Typed
from ollama_proxy.schemas.ollama import BODY_SCHEMAS

JSON, NDJSON, SSE, TEXT = "application/json", "application/x-ndjson", "text/event-stream", "text/plain"
FORM = "multipart/form-data"
_JSON_TYPES = {bool: "boolean", str: "string", dict: "object", list: "array", int: "integer", float: "number"}
_ERROR_STATUSES = {400: "the body or a parameter is malformed", 401: "no token, or an unknown one",
                   403: "the token may not call this", 404: "no such model or path",
                   413: "the body is over the limit", 429: "too many requests",
                   502: "the upstream cannot be reached", 503: "no capacity left",
                   504: "the upstream did not answer in time"}
_ERROR_SCHEMAS = {"ollama": answers.OllamaError, "openai": answers.OpenAIError, "anthropic": answers.AnthropicError}
_SURFACE_PREFIXES = {"ollama": "Ollama", "openai": "OpenAI", "anthropic": "Anthropic"}
_PATH_SCHEMAS = {"digest": {"type": "string", "pattern": "^sha256[:-][0-9a-fA-F]{64}$"}}
_BEARER_OR_KEY = [{"bearer": []}, {"apiKey": []}]


@dataclass(frozen=True)
class Operation:
    """What the description says of one route: its surface, body, answer and media types."""

    summary: str
    tag: str
    dialect: str = "ollama"
    body: object = None  # a marshmallow schema, or None
    answer: object = None  # a marshmallow schema of the 200 JSON answer, or None for any object
    media: tuple[str, ...] = (JSON,)
    public: bool = False
    example: dict | None = None  # a request body that works, for readers and the fuzzer's first try
    form: dict | None = None  # a multipart/form-data body's JSON schema, for a route that takes a form


def _native(summary: str, body=None, answer=None, media=(JSON, NDJSON), example=None) -> Operation:
    return Operation(summary, "native", body=body, answer=answer, media=media, example=example)


_HELLO = [{"role": "user", "content": "Why is the sky blue?"}]
_EXAMPLES = {
    "/api/generate": {"model": "llama3.2", "prompt": "Why is the sky blue?", "stream": False},
    "/api/chat": {"model": "llama3.2", "messages": _HELLO, "stream": False},
    "/api/embed": {"model": "all-minilm", "input": ["Why is the sky blue?"]},
    "/api/embeddings": {"model": "all-minilm", "prompt": "Why is the sky blue?"},
    "/api/show": {"model": "llama3.2"},
    "/api/pull": {"model": "llama3.2", "stream": False},
    "/api/push": {"model": "llama3.2", "stream": False},
    "/api/create": {"model": "mario", "from": "llama3.2", "system": "You are Mario.", "stream": False},
    "/api/delete": {"model": "llama3.2-backup"},
    "/api/copy": {"source": "llama3.2", "destination": "llama3.2-backup"},
}


_NATIVE_SUMMARIES = {
    "/api/generate": "Generate a completion", "/api/chat": "Chat with a model",
    "/api/embed": "Embed texts", "/api/embeddings": "Embed one prompt (older endpoint)",
    "/api/show": "Show a model's details", "/api/pull": "Pull a model (manage token)",
    "/api/push": "Push a model (manage token)", "/api/create": "Create a model (manage token)",
    "/api/delete": "Delete a model (manage token)", "/api/copy": "Copy a model (manage token)",
}

_EMPTY_ANSWERS = {"/api/copy", "/api/delete"}  # Ollama answers these with 200 and no body
_TRANSCRIPTION_FORM = {
    "type": "object", "required": ["file", "model"],
    "properties": {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
                   "language": {"type": "string"}, "prompt": {"type": "string"},
                   "response_format": {"type": "string", "enum": ["json", "text"]}},
}

OPERATIONS: dict[str, Operation] = {
    "/": Operation("Ollama's greeting", "native", media=(TEXT,), public=True),
    "/api/version": _native("Ollama's version", answer=answers.OllamaVersion, media=(JSON,)),
    "/api/tags": _native("List local models", answer=answers.OllamaModelList, media=(JSON,)),
    "/api/ps": _native("List running models", answer=answers.OllamaModelList, media=(JSON,)),
    **{path: _native(summary, body=BODY_SCHEMAS[path], example=_EXAMPLES[path],
                     media=() if path in _EMPTY_ANSWERS else (JSON, NDJSON))
       for path, summary in _NATIVE_SUMMARIES.items()},
    "/api/blobs/{digest}": _native("Check for or upload a blob (manage token)", media=(JSON, TEXT)),
    "/api/status": _native("Ollama's status: whether its cloud features are on", media=(JSON,)),
    "/api/experimental/model-recommendations": _native("The models Ollama recommends", media=(JSON,)),
    "/api/experimental/web_search": _native("Search the web from the Ollama server (web permission): "
                                            '{"query", "max_results"}', media=(JSON,)),
    "/api/experimental/web_fetch": _native('Fetch a web page from the Ollama server (web permission): {"url"}',
                                           media=(JSON,)),
    "/api/me": _native("The ollama.com account the Ollama server is signed in to (manage token)", media=(JSON,)),
    "/api/signout": _native("Sign the Ollama server out of ollama.com (manage token)", media=(JSON,)),
    "/api/{rest}": Operation("Any other native route, forwarded to Ollama as it came (manage token)", "native",
                             media=(JSON, NDJSON, TEXT)),
    "/v1/chat/completions": Operation("Create a chat completion", "openai", "openai",
                                      openai.ChatCompletionRequest, answers.OpenAIChatCompletion, (JSON, SSE),
                                      example={"model": "llama3.2", "messages": _HELLO}),
    "/v1/completions": Operation("Create a completion", "openai", "openai", openai.CompletionRequest,
                                 answers.OpenAICompletion, (JSON, SSE),
                                 example={"model": "llama3.2", "prompt": "Why is the sky blue?"}),
    "/v1/embeddings": Operation("Create embeddings", "openai", "openai", openai.EmbeddingsRequest,
                                answers.OpenAIEmbeddingList, example={"model": "all-minilm", "input": "sky"}),
    "/v1/audio/transcriptions": Operation("Transcribe audio (a form: the file and the model)", "openai", "openai",
                                          media=(JSON, TEXT), form=_TRANSCRIPTION_FORM),
    "/v1/models": Operation("List models", "openai", "openai", answer=answers.OpenAIModelList),
    "/v1/models/{model_id}": Operation("Retrieve a model", "openai", "openai", answer=answers.OpenAIModel),
    "/v1/responses": Operation("Create a response (stateless)", "responses", "openai", openai.ResponsesRequest,
                               answers.ResponsesResponse, (JSON, SSE),
                               example={"model": "llama3.2", "input": "Why is the sky blue?"}),
    "/v1/messages": Operation("Create a message", "anthropic", "anthropic", anthropic.MessagesRequest,
                              answers.AnthropicMessage, (JSON, SSE),
                              example={"model": "llama3.2", "max_tokens": 64, "messages": _HELLO}),
    "/v1/messages/count_tokens": Operation("Estimate a request's input tokens", "anthropic", "anthropic",
                                           anthropic.CountTokensRequest, answers.AnthropicTokenCount,
                                           example={"model": "llama3.2", "messages": _HELLO}),
    "/health": Operation("Is the proxy up? With a token: each upstream's state", "service", answer=answers.Health,
                         public=True),
    "/metrics": Operation("Metrics in Prometheus' text format (manage or metrics token)", "service",
                          media=(TEXT,)),
    "/openapi.json": Operation("This description", "service", public=True),
}
_ANTHROPIC_PREFIX = "/anthropic"
_NOT_API = ("/admin", "/favicon.ico")  # for a person in a browser (pages with their own login, the icon): not API


def typed_property(self, field, ret=None, **kwargs) -> dict:
    """Give a ``Typed`` field the JSON type(s) it accepts (apispec sees only a bare Field)."""
    if not isinstance(field, Typed):
        return {}
    names = [_JSON_TYPES[t] for t in field.types]
    return {"type": names[0]} if len(names) == 1 else {"oneOf": [{"type": name} for name in names]}


def schema_name(schema) -> str:
    """Name a schema's component after its surface and class: ``OllamaEmbeddingsRequest``."""
    cls = schema if isinstance(schema, type) else type(schema)
    return _SURFACE_PREFIXES.get(cls.__module__.rsplit(".", 1)[-1], "") + cls.__name__


def openapi_path(rule: str) -> str:
    """Turn a Flask rule (``/v1/models/<path:model_id>``) into an OpenAPI path."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def build_spec(app: Flask) -> dict:
    """Return the OpenAPI 3 description of every route ``app`` serves."""
    plugin = MarshmallowPlugin(schema_name_resolver=schema_name)
    spec = APISpec(title="Ollama Proxy", version=__version__, openapi_version="3.0.3", plugins=[plugin],
                   info={"description": "A gateway in front of Ollama: the native API, and the OpenAI, "
                                        "Anthropic and Responses APIs on top of it."},
                   security=_BEARER_OR_KEY)
    plugin.converter.add_attribute_function(typed_property)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.rule.startswith(_NOT_API):
            continue
        path = openapi_path(rule.rule)
        methods = sorted(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
        described = OPERATIONS.get(path.removeprefix(_ANTHROPIC_PREFIX)) or Operation(path, "other")
        spec.path(path=path, operations={m: _operation(described, path, m) for m in methods},
                  parameters=_path_parameters(path))
    return spec.to_dict()


def _path_parameters(path: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS.get(name, {"type": "string"})}
            for name in re.findall(r"{([^}]+)}", path)]


def _operation(described: Operation, path: str, method: str) -> dict:
    operation = {"summary": described.summary, "tags": [described.tag],
                 "operationId": f"{method}{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_"),
                 "responses": _responses(described)}
    if described.body is not None:
        body = {"schema": described.body, **({"example": described.example} if described.example else {})}
        operation["requestBody"] = {"required": True, "content": {JSON: body}}
    if described.form is not None:
        operation["requestBody"] = {"required": True, "content": {FORM: {"schema": described.form}}}
    if described.public:
        operation["security"] = []
    return operation


def _responses(described: Operation) -> dict:
    answer = described.answer or {"type": "object"}
    content = {media: ({"schema": answer} if media == JSON else {"schema": {"type": "string"}})
               for media in described.media}
    error = {JSON: {"schema": _ERROR_SCHEMAS[described.dialect]}}
    responses = {"200": {"description": "the answer (a stream when the body asks for one)"}}
    if content:
        responses["200"]["content"] = content
    if described.answer is answers.Health:
        responses["503"] = {"description": "the upstream does not answer", "content": {JSON: {"schema": answer}}}
    for status, why in _ERROR_STATUSES.items():
        responses.setdefault(str(status), {"description": why, "content": error})
    responses["default"] = {"description": "an upstream's own error status, passed on", "content": error}
    return responses
