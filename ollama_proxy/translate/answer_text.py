"""Read the text of an answer back out of the bytes a client was sent, in any surface's shape.

Whole answers are one JSON object; streams are NDJSON lines (native) or SSE
``data:`` events (OpenAI chat and completions, Anthropic, Responses). Each
piece of text is found where its protocol puts it; thinking and tool calls are
not text. A body that is cut short or not JSON gives the text read so far.
"""

from __future__ import annotations

import json


def _choices_text(obj: dict) -> str:
    parts = []
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        holder = choice.get("delta") or choice.get("message") or {}
        parts.append((holder.get("content") if isinstance(holder, dict) else None) or choice.get("text") or "")
    return "".join(p for p in parts if isinstance(p, str))


def _blocks_text(blocks) -> str:
    """Text of Anthropic content blocks or Responses output items."""
    parts = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") in ("text", "output_text"):
            parts.append(block.get("text") or "")
        elif block.get("type") == "message":
            parts.append(_blocks_text(block.get("content")))
    return "".join(p for p in parts if isinstance(p, str))


def text_of(obj) -> str:
    """Return the answer text one JSON object (a whole answer, a chunk or an event) carries."""
    if not isinstance(obj, dict):
        return ""
    if "choices" in obj:  # OpenAI chat or completions, whole or chunk
        return _choices_text(obj)
    kind = obj.get("type")
    if kind == "content_block_delta":  # Anthropic stream
        value = (obj.get("delta") or {}).get("text") if isinstance(obj.get("delta"), dict) else None
    elif kind == "response.output_text.delta":  # Responses stream
        value = obj.get("delta")
    elif kind == "message" and "content" in obj:  # Anthropic whole answer
        value = _blocks_text(obj["content"])
    elif obj.get("object") == "response":  # Responses whole answer
        value = _blocks_text(obj.get("output"))
    elif isinstance(obj.get("message"), dict):  # native chat
        value = obj["message"].get("content")
    else:
        value = obj.get("response")  # native generate (in other events, "response" is an object)
    return value if isinstance(value, str) else ""


def _objects(body: bytes, content_type: str) -> list:
    text = body.decode("utf-8", "replace")
    if content_type == "text/event-stream":
        lines = [line[5:].strip() for line in text.split("\n") if line.startswith("data:")]
    elif content_type == "application/x-ndjson":
        lines = [line for line in text.split("\n") if line.strip()]
    else:
        lines = [text]
    objects = []
    for line in lines:
        try:
            objects.append(json.loads(line))
        except ValueError:
            continue  # [DONE], or a line cut short
    return objects


def answer_text(content_type: str, body: bytes) -> str:
    """Return the text a client was answered, from the body bytes and their media type."""
    return "".join(text_of(obj) for obj in _objects(body, content_type))
