"""Estimate the input tokens of an Anthropic request, without a tokenizer."""

from __future__ import annotations

import json
import math
from typing import Any

from ollama_proxy.errors import InvalidRequest

# No tokenizer here (and the model's is behind Ollama), so this is an estimate:
# about 4 characters a token for English text and JSON, a few tokens of role and
# turn markers per message, and a flat cost per image: Anthropic's figure for a
# full-size image. Vision models behind Ollama use 256 to ~1,500; erring high is
# the safe side for a client budgeting its context window.
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
_IMAGE_TOKENS = 1600


def count_tokens(body: dict) -> int:
    """Estimate the input tokens of a Messages (or count_tokens) request.

    An estimate, not a count: characters / 4 over the system prompt, the text,
    thinking, tool_use inputs and tool results of every message, and the JSON
    of the tool definitions; plus 4 tokens a message and 1,600 an image.
    Previous thinking is counted although many chat templates drop it.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    messages = body.get("messages")
    messages = [] if messages is None else messages
    tools = body.get("tools")
    tools = [] if tools is None else tools
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    chars, images = _measure(body.get("system"))
    for message in messages:
        more_chars, more_images = _measure(message.get("content") if isinstance(message, dict) else message)
        chars += more_chars
        images += more_images
    chars += sum(len(_dumps(tool)) for tool in tools)
    turns = len(messages) + (1 if body.get("system") else 0)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD * turns + _IMAGE_TOKENS * images


def _measure(content: Any) -> tuple[int, int]:
    """Return (characters, images) of a string or a list of content blocks."""
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return len(content), 0
    if not isinstance(content, list):
        return _measure_block(content)
    chars = images = 0
    for block in content:
        more_chars, more_images = _measure_block(block)
        chars += more_chars
        images += more_images
    return chars, images


def _measure_block(block: Any) -> tuple[int, int]:
    """Return (characters, images) of one content block."""
    if isinstance(block, str):
        return len(block), 0
    if not isinstance(block, dict):
        return len(_dumps(block)), 0
    kind = block.get("type")
    if kind == "image":
        return 0, 1
    if kind in ("text", "thinking"):
        return len(str(block.get(kind) or "")), 0
    if kind == "redacted_thinking":
        return 0, 0  # dropped before Ollama sees it
    if kind == "tool_use":
        return len(str(block.get("name") or "")) + len(_dumps(block.get("input") or {})), 0
    if kind == "tool_result":
        return _measure(block.get("content"))
    return len(_dumps(block)), 0


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
