"""Parse a JSON body and check it against a schema, failing as InvalidRequest."""

from __future__ import annotations

import json
import re
from json.decoder import JSONObject

from marshmallow import Schema, ValidationError

from ollama_proxy.errors import InvalidRequest, PayloadTooLarge
from ollama_proxy.greenlets import OFF_LOOP_BYTES, off_loop, read_in_pieces
from ollama_proxy.schemas.counts import check_item_counts
from ollama_proxy.schemas.field_names import check_field_names, unrepeated_fields
from ollama_proxy.schemas.long_strings import decoded_text, parsed_in_pieces

# A body past OFF_LOOP_BYTES is parsed and checked in a thread, not on the event loop: the other streams of its
# worker go on meanwhile (a valid 6.5 MiB chat takes a second or more to check).
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's own


def read_request_body(request) -> bytes:
    """Return the request body, refusing one over the limit even when it came without a length."""
    raw = read_in_pieces(request)
    limit = request.max_content_length
    # Werkzeug stops reading a chunked body at the limit without saying so.
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise PayloadTooLarge(f"the request body is larger than the limit ({limit} bytes)")
    return raw


def checked_body(raw: bytes, schema: Schema | None, limits) -> tuple[dict, dict | None]:
    """Parse ``raw``, refuse it past the item bounds of ``limits``, and check it with ``schema`` (if any).

    Returns the body as sent and as the schema loaded it; a large body is checked off the event loop.
    """
    bounds = {"messages": limits.max_messages, "input_items": limits.max_input_items, "tools": limits.max_tools,
              "images": limits.max_images}

    def check() -> tuple[dict, dict | None]:
        body = parse_json_object(raw)
        check_item_counts(body, bounds)
        return body, None if schema is None else load(schema, body)
    return off_loop(check) if len(raw) > OFF_LOOP_BYTES else check()


def parse_json_object(raw: bytes) -> dict:
    """Return the JSON object in ``raw``, or raise InvalidRequest saying what is wrong."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty: a JSON object is required")
    try:
        body = parsed_in_pieces(raw, _decoded)
        if body is None:
            body = _decoded(decoded_text(raw))
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits, NaN, Infinity
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _decoded(text: str):
    """Decode JSON text as ``json.loads`` does, refusing a field the top-level object gives twice.

    Only the top level is read in Python, by json's own object reader, which hands
    its pairs, repeats kept, to ``unrepeated_fields``; the values are read by the C
    scanner, so a long chat costs what it cost.
    """
    decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
    start = _WHITESPACE.match(text).end()
    if not text.startswith("{", start):
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    body, end = JSONObject((text, start + 1), decoder.strict, decoder.scan_once, None, unrepeated_fields)
    end = _WHITESPACE.match(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return body


def _refuse_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and Ollama) does not.
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is too large for a JSON number")
    return value


def field_path(messages, prefix: str = "") -> tuple[str, str]:
    """Return the first failing field of marshmallow's messages as (``a.b[0].c``, message)."""
    key, value = next(iter(messages.items()))
    path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
    if isinstance(value, dict):
        return field_path(value, path)
    return path, value[0] if isinstance(value, list) else str(value)


def load(schema: Schema, body: dict) -> dict:
    """Check ``body`` with ``schema``; raise InvalidRequest naming the first bad field.

    A key that an upstream would read as another field (``"Model"`` beside ``"model"``) is refused first.
    """
    check_field_names(body)
    try:
        return schema.load(body)
    except ValidationError as exc:
        param, message = field_path(exc.messages)
        if param == "_schema":
            raise InvalidRequest(message) from None
        # "model is required" names its field already: no "model: model is required".
        text = message if message.startswith(param + " ") else f"{param}: {message}"
        raise InvalidRequest(text, param=param) from None
