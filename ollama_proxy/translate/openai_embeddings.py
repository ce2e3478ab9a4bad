"""Translate OpenAI embeddings requests and responses to and from Ollama ``/api/embed``.

``input`` (a string or a list of strings) and ``dimensions`` keep their names;
token arrays are refused: Ollama embeds text, and which tokenizer made them is
the client's secret (LangChain's ``OpenAIEmbeddings`` tokenizes with tiktoken unless
``check_embedding_ctx_length=False``; the message says so). ``encoding_format`` is applied to
the response here, never sent: ``float`` (the default) or ``base64`` (each
vector as little-endian float32 bytes, which the ``openai`` SDK asks for by
default).
"""

from __future__ import annotations

import base64
import sys
from array import array

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_common import passthrough, sampling_options

_MAPPED = frozenset({"input", "dimensions", "encoding_format", "num_ctx", "options"})

_FORMATS = ("float", "base64")


def from_openai_embeddings(body: dict) -> dict:
    """Translate an OpenAI embeddings request into an Ollama /api/embed body."""
    encoding_format(body)
    ollama = passthrough(body, _MAPPED)
    ollama["input"] = _input(body.get("input"))
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise InvalidRequest("dimensions must be an integer of at least 1", param="dimensions")
        ollama["dimensions"] = dimensions
    options = sampling_options({key: body.get(key) for key in ("num_ctx", "options")})
    if options:
        ollama["options"] = options
    return ollama


def encoding_format(body: dict) -> str:
    """Return the request's ``encoding_format`` ("float" unless set), or refuse it."""
    value = body.get("encoding_format")
    if value is None:
        return "float"
    if value not in _FORMATS:
        raise InvalidRequest('encoding_format must be "float" or "base64"', param="encoding_format")
    return value


def _input(value: object) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    if isinstance(value, list) and value and all(isinstance(item, (int, list)) for item in value):
        raise InvalidRequest("token arrays are not supported: Ollama embeds text (LangChain's OpenAIEmbeddings "
                             "sends them unless made with check_embedding_ctx_length=False)", param="input")
    raise InvalidRequest("input must be a string or a non-empty list of strings", param="input")


def to_openai_embeddings(ollama_resp: dict, *, model: str, encoding_format: str = "float") -> dict:
    """Translate an Ollama /api/embed response into an OpenAI embeddings list."""
    if encoding_format not in _FORMATS:
        raise InvalidRequest('encoding_format must be "float" or "base64"', param="encoding_format")
    encode = _base64_float32 if encoding_format == "base64" else list
    data = [{"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(ollama_resp.get("embeddings") or [])]
    tokens = ollama_resp.get("prompt_eval_count") or 0
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _base64_float32(vector: list[float]) -> str:
    # The openai SDK decodes with numpy.frombuffer(dtype="float32"): little-endian
    # float32, whatever this host's byte order.
    values = array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")
