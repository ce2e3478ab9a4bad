"""Translate Anthropic's system prompt and messages into Ollama chat messages.

| content block | becomes |
|---|---|
| ``text`` | ``content``; several text blocks are joined with a blank line |
| ``image`` (``base64``, or a ``url`` the proxy fetches) | ``images`` |
| ``tool_use`` (assistant) | ``tool_calls``, its ``input`` as the arguments |
| ``tool_result`` (user; a string, or text and image blocks) | a ``tool`` message named after its call |
| ``tool_result`` with ``is_error: true`` | the same, its text prefixed with ``Error: `` |
| ``thinking`` (assistant) | ``thinking`` |
| ``redacted_thinking`` | dropped: it is encrypted for Claude alone |
| ``document`` (PDF, text sources), file sources | refused (400): no Ollama equivalent |

A message of role ``system`` among the others (a string or text blocks: how
Claude Code passes instructions mid-conversation, under the beta
``mid-conversation-system-2026-04-07``) becomes an Ollama ``system`` message
where it stands; Ollama's templates take system messages anywhere. An empty one
is left out, as an empty ``system`` is.

Text blocks are joined with a blank line so that adjacent blocks do not run
into each other. Each ``tool_result`` becomes a ``tool`` message of its own, in
the order of the blocks.
"""

from __future__ import annotations

from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic._common import required_string
from ollama_proxy.translate.images import check_base64, image_reference

_JOIN = "\n\n"


def system_messages(system: Any, where: str = "system") -> list[dict]:
    """Turn a system prompt (a string or text blocks) into a system message; none when it is empty."""
    if system is None or isinstance(system, str):
        text = system or ""
    elif isinstance(system, list):
        text = _join([_system_text(block, f"{where}.{i}") for i, block in enumerate(system)])
    else:
        raise InvalidRequest(f"{where} must be a string or a list of text blocks", param=where)
    return [{"role": "system", "content": text}] if text else []


def _system_text(block: Any, where: str) -> str:
    if _block_type(block, where) != "text":
        raise InvalidRequest(f"{where}: only text blocks are allowed in system", param=where)
    return required_string(block, "text", where)


def conversation_messages(messages: Any) -> list[dict]:
    """Translate the conversation, keeping the tool names of earlier tool_use blocks."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    tool_names: dict[str, str] = {}
    out: list[dict] = []
    for i, message in enumerate(messages):
        out += _message(message, f"messages.{i}", tool_names)
    return out


def _message(message: Any, where: str, tool_names: dict[str, str]) -> list[dict]:
    """Translate one message; with tool results it becomes several Ollama messages."""
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise InvalidRequest(f"{where}.role must be 'user', 'assistant' or 'system'", param=f"{where}.role")
    content = message.get("content")
    if role == "system" and content is not None:
        return system_messages(content, f"{where}.content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of content blocks",
                             param=f"{where}.content")
    return _blocks(role, content, f"{where}.content", tool_names)


def _blocks(role: str, blocks: list, where: str, tool_names: dict[str, str]) -> list[dict]:
    """Translate content blocks in order: each tool_result is its own ``tool`` message."""
    out: list[dict] = []
    current: dict | None = None
    for j, block in enumerate(blocks):
        here = f"{where}.{j}"
        kind = _block_type(block, here)
        if kind == "tool_result":
            _require_role(role, "user", kind, here)
            if current is not None:
                out.append(_finish(current))
                current = None
            out.append(_tool_message(block, here, tool_names))
            continue
        if current is None:
            current = {"role": role, "text": [], "thinking": [], "images": [], "tool_calls": []}
        _add_block(current, kind, block, here, tool_names)
    if current is not None or not out:
        out.append(_finish(current or {"role": role}))
    return out


def _add_block(current: dict, kind: str, block: dict, where: str, tool_names: dict[str, str]) -> None:
    """Add one non-tool_result block to the message being built."""
    if kind == "text":
        current["text"].append(required_string(block, "text", where))
    elif kind == "image":
        current["images"].append(_image(block, where))
    elif kind == "tool_use":
        _require_role(current["role"], "assistant", kind, where)
        call = _tool_call(block, where)
        tool_names[call["id"]] = call["function"]["name"]
        current["tool_calls"].append(call)
    elif kind == "thinking":
        _require_role(current["role"], "assistant", kind, where)
        current["thinking"].append(required_string(block, "thinking", where))
    elif kind == "redacted_thinking":
        _require_role(current["role"], "assistant", kind, where)
    elif kind == "document":
        raise InvalidRequest(f"{where}: document blocks are not supported (Ollama models take text and images)",
                             param=where)
    else:
        raise InvalidRequest(f"{where}: content block type {kind!r} is not supported", param=where)


def _finish(current: dict) -> dict:
    """Close a message being built into Ollama's shape, leaving out empty fields."""
    message = {"role": current["role"], "content": _join(current.get("text", []))}
    thinking = _join(current.get("thinking", []))
    if thinking:
        message["thinking"] = thinking
    for name in ("images", "tool_calls"):
        if current.get(name):
            message[name] = current[name]
    return message


def _tool_call(block: dict, where: str) -> dict:
    """Translate a tool_use block into an Ollama tool call."""
    call_id = block.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.id: a tool_use block needs an id", param=f"{where}.id")
    name = required_string(block, "name", where)
    arguments = block.get("input")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}.input must be an object", param=f"{where}.input")
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


def _tool_message(block: dict, where: str, tool_names: dict[str, str]) -> dict:
    """Translate a tool_result block into an Ollama ``tool`` message."""
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest(f"{where}.tool_use_id: a tool_result block needs a tool_use_id",
                             param=f"{where}.tool_use_id")
    text, images = _tool_result_content(block.get("content"), f"{where}.content")
    if block.get("is_error") is True:
        text = "Error: " + text
    message = {"role": "tool", "content": text, "tool_call_id": tool_use_id}
    # A result whose tool_use is not in the history (a trimmed conversation) still goes,
    # without a name: better than refusing a conversation the model can still follow.
    if tool_use_id in tool_names:
        message["tool_name"] = tool_names[tool_use_id]
    if images:
        message["images"] = images
    return message


def _tool_result_content(content: Any, where: str) -> tuple[str, list[str]]:
    """Return the text and images of a tool_result's content."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of blocks", param=where)
    texts, images = [], []
    for k, block in enumerate(content):
        here = f"{where}.{k}"
        kind = _block_type(block, here)
        if kind == "text":
            texts.append(required_string(block, "text", here))
        elif kind == "image":
            images.append(_image(block, here))
        else:
            raise InvalidRequest(f"{here}: {kind!r} blocks are not supported in tool_result content", param=here)
    return _join(texts), images


def _image(block: dict, where: str) -> str:
    """Return the Ollama ``images`` entry for an image block."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source must be an object", param=f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type is not None and not (isinstance(media_type, str) and media_type.startswith("image/")):
            raise InvalidRequest(f"{where}.source.media_type must be an image type such as image/png",
                                 param=f"{where}.source.media_type")
        return check_base64(required_string(source, "data", f"{where}.source"), f"{where}.source.data")
    if kind == "url":
        return image_reference(required_string(source, "url", f"{where}.source"), f"{where}.source.url")
    raise InvalidRequest(f"{where}.source.type {kind!r} is not supported: use base64 or url",
                         param=f"{where}.source.type")


def _block_type(block: Any, where: str) -> str:
    """Return a content block's type, refusing anything that is not a typed object."""
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where} must be a content block with a type", param=where)
    return block["type"]


def _require_role(role: str, wanted: str, kind: str, where: str) -> None:
    """Refuse a block in a message of the wrong role, as Anthropic does."""
    if role != wanted:
        raise InvalidRequest(f"{where}: {kind} blocks belong in {wanted} messages", param=where)


def _join(texts: list[str]) -> str:
    """Join text blocks with a blank line, skipping empty ones."""
    return _JOIN.join(t for t in texts if t)
