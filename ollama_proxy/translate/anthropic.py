"""Translate between Anthropic's Messages API and Ollama's ``/api/chat``.

- ``from_anthropic_messages(body)``: a Messages request -> an Ollama chat body.
- ``to_anthropic_message(resp, ...)``: a finished Ollama chat response -> a Message.
- ``MessagesStreamConverter``: Ollama chunks -> Anthropic stream events, as
  ``(event, data)`` pairs; the SSE framing is done elsewhere.
- ``count_tokens(body)``: an estimate of a request's input tokens.

What Ollama cannot do, and what is done instead:

- ``tool_choice``: Ollama cannot force a tool call. ``any`` offers every tool,
  ``{type: tool, name}`` offers only that tool, ``none`` offers none; the model
  may still answer in text. ``disable_parallel_tool_use`` is ignored: Ollama
  has no such switch.
- ``thinking.budget_tokens``: Ollama's ``think`` is on/off or a level, never a
  budget. ``thinking`` ``enabled``, ``adaptive`` or ``between_tools`` turns
  ``think`` on, ``disabled`` off; ``output_config.effort`` becomes the level
  (``xhigh`` -> ``high``) when thinking is on. Effort alone does not turn it
  on: Ollama refuses ``think`` for models that cannot think.
- Thinking is unsigned in Ollama: thinking blocks carry ``signature: ""``.
  Thinking in the history goes back as plain text; ``redacted_thinking`` is
  encrypted for Claude alone and is dropped.
- ``stop_sequence``: Ollama says ``done_reason: "stop"`` both at the end of a
  turn and at a stop sequence, and strips the sequence, so a match cannot be
  told apart: ``stop_reason`` is ``end_turn`` and ``stop_sequence`` is null.
- ``metadata`` (a user id for Anthropic's abuse tracking), ``service_tier``
  (Anthropic's capacity tiers), ``container`` (Anthropic's code-execution
  sandbox) and ``mcp_servers`` (Anthropic's server-side MCP connector) ask for
  things only Anthropic's servers do: dropped. So are ``cache_control`` (and
  the blocks' own: Ollama reuses a shared prompt prefix by itself),
  ``context_management``, ``diagnostics``, ``inference_geo``, ``speed``,
  ``user_profile_id`` and ``workspace_id``.
- Server tools (web search, code execution, ...) run on Anthropic's servers:
  refused rather than faked. ``document`` blocks (PDF, text sources) and file
  sources have no Ollama equivalent: refused.
- Several text blocks in one message or system prompt are joined with a blank
  line, so that adjacent blocks do not run into each other.

Every other top-level field is copied into the Ollama body (Ollama ignores
what it does not know), and Ollama's own fields are accepted: ``options``
(merged over the mapped ones), ``keep_alive``, ``think`` and ``format`` (they
win over the mapped ones), ``num_ctx`` (into ``options``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.images import check_base64, image_reference

NewId = Callable[[str], str]
Event = tuple[str, dict]

# Anthropic-only fields: services of Anthropic's servers (see the module docstring).
_DROPPED = frozenset({
    "metadata", "service_tier", "container", "mcp_servers", "cache_control", "context_management",
    "diagnostics", "inference_geo", "speed", "user_profile_id", "workspace_id",
})
# Fields mapped here; every other field is copied through as it came.
_MAPPED = frozenset({
    "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "tools", "tool_choice", "thinking", "output_config",
    "output_format", "options", "num_ctx",
})
_THINKING_ON = frozenset({"enabled", "adaptive", "between_tools"})
# Anthropic's effort -> Ollama's think level; Ollama has no step between high and max.
_THINK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}
_JOIN = "\n\n"


# --- request ---------------------------------------------------------------

def from_anthropic_messages(body: dict) -> dict:
    """Translate an Anthropic Messages request into an Ollama ``/api/chat`` body."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a model name is required", param="model")
    ollama: dict[str, Any] = {
        "model": model,
        "messages": _system_messages(body.get("system")) + _messages(body.get("messages")),
        "stream": _stream(body.get("stream")),
        "options": _options(body),
    }
    tools = _choose_tools(_tools(body.get("tools")), body.get("tool_choice"))
    if tools:
        ollama["tools"] = tools
    output_config = _output_config(body.get("output_config"))
    think = _think(body.get("thinking"), output_config.get("effort"))
    if think is not None:
        ollama["think"] = think
    schema = _output_schema(output_config.get("format") or body.get("output_format"))
    if schema is not None:
        ollama["format"] = schema
    ollama.update({k: v for k, v in body.items() if k not in _MAPPED and k not in _DROPPED})
    return ollama


def _stream(stream: Any) -> bool:
    """Return the stream flag, set always: Anthropic defaults to false, Ollama to true."""
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    return stream


def _options(body: dict) -> dict:
    """Collect the sampling fields into Ollama ``options``."""
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: field required", param="max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    options: dict[str, Any] = {"num_predict": max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is None:
            continue
        if not (_is_int(value) if name == "top_k" else _is_number(value)):
            kind = "an integer" if name == "top_k" else "a number"
            raise InvalidRequest(f"{name} must be {kind}", param=name)
        options[name] = value
    stop = _stop_sequences(body.get("stop_sequences"))
    if stop:
        options["stop"] = stop
    extra = body.get("options")
    if extra is not None:
        if not isinstance(extra, dict):
            raise InvalidRequest("options must be an object", param="options")
        options.update(extra)
    if body.get("num_ctx") is not None:
        options["num_ctx"] = body["num_ctx"]
    return options


def _stop_sequences(stop: Any) -> list[str]:
    """Return ``stop_sequences`` as a list of strings (empty when absent)."""
    if stop is None:
        return []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stop_sequences must be a list of strings", param="stop_sequences")
    return list(stop)


def _system_messages(system: Any) -> list[dict]:
    """Turn ``system`` (a string or text blocks) into a leading system message."""
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise InvalidRequest("system must be a string or a list of text blocks", param="system")
    texts = []
    for i, block in enumerate(system):
        if _block_type(block, f"system.{i}") != "text":
            raise InvalidRequest(f"system.{i}: only text blocks are allowed in system", param=f"system.{i}")
        texts.append(_string(block, "text", f"system.{i}"))
    text = _join(texts)
    return [{"role": "system", "content": text}] if text else []


def _messages(messages: Any) -> list[dict]:
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
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role must be 'user' or 'assistant'", param=f"{where}.role")
    content = message.get("content")
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
        current["text"].append(_string(block, "text", where))
    elif kind == "image":
        current["images"].append(_image(block, where))
    elif kind == "tool_use":
        _require_role(current["role"], "assistant", kind, where)
        call = _tool_call(block, where)
        tool_names[call["id"]] = call["function"]["name"]
        current["tool_calls"].append(call)
    elif kind == "thinking":
        _require_role(current["role"], "assistant", kind, where)
        current["thinking"].append(_string(block, "thinking", where))
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
    name = _string(block, "name", where)
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
            texts.append(_string(block, "text", here))
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
        return check_base64(_string(source, "data", f"{where}.source"), f"{where}.source.data")
    if kind == "url":
        return image_reference(_string(source, "url", f"{where}.source"), f"{where}.source.url")
    raise InvalidRequest(f"{where}.source.type {kind!r} is not supported: use base64 or url",
                         param=f"{where}.source.type")


def _tools(tools: Any) -> list[dict]:
    """Translate custom tools into Ollama function tools; refuse server tools."""
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InvalidRequest("tools must be a list of objects", param="tools")
    server = [f"{t.get('name')} ({t['type']})" for t in tools if t.get("type") not in (None, "custom")]
    if server:
        raise InvalidRequest("server tools run on Anthropic's servers and are not supported: "
                             + ", ".join(server), param="tools")
    return [_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]


def _tool(tool: dict, where: str) -> dict:
    """Translate one custom tool definition."""
    function = {"name": _string(tool, "name", where)}
    description = tool.get("description")
    if description is not None:
        function["description"] = description
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}.input_schema must be a JSON schema object", param=f"{where}.input_schema")
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _choose_tools(tools: list[dict], choice: Any) -> list[dict]:
    """Apply ``tool_choice`` by narrowing the tools offered (Ollama cannot force a call)."""
    if choice is None:
        return tools
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    kind = choice.get("type")
    if kind == "none":
        return []
    if kind in ("auto", "any"):
        return tools
    if kind == "tool":
        name = choice.get("name")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in tools", param="tool_choice.name")
        return chosen
    raise InvalidRequest("tool_choice.type must be auto, any, tool or none", param="tool_choice.type")


def _output_config(config: Any) -> dict:
    """Return ``output_config`` as a dict (empty when absent)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequest("output_config must be an object", param="output_config")
    return config


def _think(thinking: Any, effort: Any) -> bool | str | None:
    """Map ``thinking`` (and ``output_config.effort``) to Ollama's ``think``."""
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise InvalidRequest("thinking must be an object", param="thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        return False
    if kind not in _THINKING_ON:
        raise InvalidRequest("thinking.type must be enabled, adaptive, between_tools or disabled",
                             param="thinking.type")
    return _THINK_LEVELS.get(effort.lower() if isinstance(effort, str) else None, True)


def _output_schema(output_format: Any) -> dict | None:
    """Return the JSON schema of a structured-output request, for Ollama's ``format``."""
    if output_format is None:
        return None
    if (not isinstance(output_format, dict) or output_format.get("type") != "json_schema"
            or not isinstance(output_format.get("schema"), dict)):
        raise InvalidRequest("output format must be {\"type\": \"json_schema\", \"schema\": {...}}",
                             param="output_config.format")
    return output_format["schema"]


def _block_type(block: Any, where: str) -> str:
    """Return a content block's type, refusing anything that is not a typed object."""
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where} must be a content block with a type", param=where)
    return block["type"]


def _require_role(role: str, wanted: str, kind: str, where: str) -> None:
    """Refuse a block in a message of the wrong role, as Anthropic does."""
    if role != wanted:
        raise InvalidRequest(f"{where}: {kind} blocks belong in {wanted} messages", param=where)


def _string(block: dict, name: str, where: str) -> str:
    """Return a required string field of a block."""
    value = block.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{name} must be a string", param=f"{where}.{name}")
    return value


def _join(texts: list[str]) -> str:
    """Join text blocks with a blank line, skipping empty ones."""
    return _JOIN.join(t for t in texts if t)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- response --------------------------------------------------------------

def to_anthropic_message(ollama_resp: dict, *, message_id: str, model: str, new_id: NewId) -> dict:
    """Translate a finished Ollama chat response into an Anthropic Message."""
    message = ollama_resp.get("message") or {}
    content: list[dict] = []
    if message.get("thinking"):
        content.append({"type": "thinking", "thinking": message["thinking"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    for call in calls:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": function.get("name", ""),
                        "input": _tool_input(function.get("arguments"))})
    return {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": _stop_reason(ollama_resp, bool(calls)),
        "stop_sequence": None, "usage": _usage(ollama_resp),
    }


def _tool_input(arguments: Any) -> dict:
    """Return tool arguments as the object Anthropic's ``input`` must be."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    if isinstance(arguments, dict):
        return arguments
    # Not an object: keep what the model wrote rather than lose it.
    return {"_raw_arguments": arguments}


def _stop_reason(ollama_resp: dict, tool_used: bool) -> str:
    """Map Ollama's ``done_reason`` to Anthropic's ``stop_reason``."""
    if tool_used:
        return "tool_use"
    if ollama_resp.get("done_reason") == "length":
        return "max_tokens"
    return "end_turn"


def _usage(ollama_resp: dict) -> dict:
    """Return Anthropic usage from Ollama's counters (absent counts are 0)."""
    return {"input_tokens": ollama_resp.get("prompt_eval_count") or 0,
            "output_tokens": ollama_resp.get("eval_count") or 0}


# --- stream ----------------------------------------------------------------

class MessagesStreamConverter:
    """Turn one stream of Ollama chat chunks into Anthropic stream events.

    ``process``, ``ping`` and ``error`` return ``(event, data)`` pairs. The first
    ``process`` or ``ping`` emits ``message_start``, so a client sees the message
    begin while the model loads (an error needs none: Anthropic's ``error``
    event may come at any point, and it alone is sent). Blocks get consecutive indexes; a thinking block
    ends with an empty ``signature_delta`` (Ollama's thinking is unsigned); each
    tool call is a whole ``tool_use`` block with its input as one
    ``input_json_delta``. After the ``done`` chunk or an error the converter is
    ``finished`` and returns nothing more. A stream that ends without ``done`` is
    a failure: the caller reports it with ``error``.
    """

    def __init__(self, message_id: str, model: str, *, new_id: NewId):
        self.message_id = message_id
        self.model = model
        self.finished = False
        self._new_id = new_id
        self._started = False
        self._index = 0      # index of the open block, or of the next one
        self._open = None    # "thinking" or "text" while such a block is open
        self._tool_used = False

    def process(self, ollama_chunk: dict) -> list[Event]:
        """Return the events for one Ollama chunk."""
        if self.finished:
            return []
        if "error" in ollama_chunk:
            error = ollama_chunk["error"]
            return self.error(error if isinstance(error, str) else json.dumps(error))
        events = self._start(ollama_chunk)
        message = ollama_chunk.get("message") or {}
        if message.get("thinking"):
            events += self._delta("thinking", message["thinking"])
        if message.get("content"):
            events += self._delta("text", message["content"])
        for call in message.get("tool_calls") or []:
            events += self._tool_use(call)
        if ollama_chunk.get("done"):
            events += self._finish(ollama_chunk)
        return events

    def ping(self) -> list[Event]:
        """Return a keep-alive ping (after ``message_start`` if not sent yet)."""
        if self.finished:
            return []
        return self._start({}) + [("ping", {"type": "ping"})]

    def error(self, message: str) -> list[Event]:
        """Return the error event for an upstream failure and finish the stream."""
        if self.finished:
            return []
        self.finished = True
        return [("error", {"type": "error", "error": {"type": "api_error", "message": message}})]

    fail = error

    def close(self) -> list[Event]:
        """Return what is owed when the upstream ends: an error if it never said done."""
        return self.error("the upstream closed the stream before the response was complete")

    def _start(self, chunk: dict) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": chunk.get("prompt_eval_count") or 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _delta(self, kind: str, text: str) -> list[Event]:
        """Append thinking or text, opening a block of that kind if needed."""
        events = []
        if self._open != kind:
            events += self._close()
            block = {"type": kind, kind: ""}
            if kind == "thinking":
                block["signature"] = ""
            events.append(self._block_event("content_block_start", content_block=block))
            self._open = kind
        events.append(self._block_event("content_block_delta", delta={"type": f"{kind}_delta", kind: text}))
        return events

    def _close(self) -> list[Event]:
        """Close the open thinking or text block, if any."""
        if self._open is None:
            return []
        events = []
        if self._open == "thinking":
            # Anthropic's clients expect a signature before a thinking block ends.
            events.append(self._block_event("content_block_delta", delta={"type": "signature_delta", "signature": ""}))
        events.append(self._block_event("content_block_stop"))
        self._index += 1
        self._open = None
        return events

    def _tool_use(self, call: dict) -> list[Event]:
        """Emit one tool call as a complete tool_use block."""
        events = self._close()
        function = call.get("function") or {}
        block = {"type": "tool_use", "id": self._new_id("toolu_"), "name": function.get("name", ""), "input": {}}
        partial = json.dumps(_tool_input(function.get("arguments")), ensure_ascii=False)
        events += [
            self._block_event("content_block_start", content_block=block),
            self._block_event("content_block_delta", delta={"type": "input_json_delta", "partial_json": partial}),
            self._block_event("content_block_stop"),
        ]
        self._index += 1
        self._tool_used = True
        return events

    def _finish(self, chunk: dict) -> list[Event]:
        """Close the message after Ollama's ``done`` chunk."""
        events = self._close()
        self.finished = True
        delta = {"stop_reason": _stop_reason(chunk, self._tool_used), "stop_sequence": None}
        return events + [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": _usage(chunk)}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def _block_event(self, name: str, **fields: Any) -> Event:
        return name, {"type": name, "index": self._index, **fields}


# --- token count -----------------------------------------------------------

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
