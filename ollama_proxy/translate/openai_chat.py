"""Translate OpenAI chat completions requests into Ollama ``/api/chat`` bodies.

A request field is mapped, read by the gateway, or passed through (see ``openai_common``):

| field | becomes |
|---|---|
| ``messages[].role`` | the same role; ``developer`` -> ``system``, ``function`` -> ``tool`` |
| ``messages[].content`` | a string as it is; ``text`` and ``refusal`` parts joined with a newline |
| ``image_url`` parts | ``images``: a ``data:`` URI is decoded, an ``http(s)`` URL fetched by the proxy (``images.*``) |
| ``messages[].tool_calls`` | ``tool_calls``, arguments JSON string -> object (invalid JSON: a 400 naming the param) |
| ``tool`` messages | ``tool_name`` from the assistant call their ``tool_call_id`` answers (the id is kept) |
| ``messages[].reasoning_content``, ``reasoning`` | ``thinking`` |
| ``tools``, ``tool_choice`` | ``tools``, narrowed by ``tool_choice`` (below) |
| ``max_tokens``, ``max_completion_tokens`` | ``options.num_predict`` (the newer name wins) |
| ``temperature``, ``top_p``, ``seed``, ``stop`` | ``options`` (a ``stop`` string becomes a list of one) |
| ``frequency_penalty``, ``presence_penalty`` | ``options`` |
| ``response_format`` | ``json_object`` -> ``format: "json"``; ``json_schema`` -> ``format: <schema>``; ``text``: none |
| ``reasoning_effort``, ``reasoning.effort`` | ``think``, by effort (below); ``reasoning.effort`` wins |
| ``logprobs``, ``top_logprobs`` | passed as they are; Ollama's logprobs come back as ``choices[].logprobs.content`` |
| ``stream`` | ``stream``, always sent (OpenAI's default is false, Ollama's true); SSE back |
| ``stream_options.include_usage`` | read by the gateway: a last usage chunk with ``choices: []`` |
| ``n`` | read by the gateway: n generations side by side, their usage summed |
| ``exclude_reasoning`` (extra) | read by the gateway: reasoning left out of the answer while the model still thinks |
| ``think``, ``format`` (extras) | Ollama's own fields, winning over ``reasoning_effort`` and ``response_format`` |
| ``options``, ``num_ctx`` (extras) | ``options``, winning over the mapped options |
| ``input_audio`` and ``file`` parts, non-function tool calls | refused (400): Ollama takes text, images and functions |
| anything else (``keep_alive``, ``user``, ``metadata``, unknown fields ...) | passed on to Ollama untouched |

What Ollama cannot do, and what is done instead:

- ``tool_choice``: Ollama cannot force a call. ``none`` sends no tools, a named
  function (or ``allowed_tools``) sends only those tools, ``auto`` and
  ``required`` send them all; the model may still answer in text.
- Reasoning efforts: ``none`` turns ``think`` off; ``minimal`` becomes
  ``"low"`` and ``xhigh`` ``"high"``; ``low``, ``medium``, ``high`` and ``max``
  keep their name; any other effort is refused. For a model without the
  ``thinking`` capability the ``think`` an effort becomes is left out
  (``translate.thinking``): Ollama would refuse it, and clients send an effort
  whatever the model. Ollama's own ``think`` field stays as the client sent it.
- ``image_url.detail``: Ollama has no detail levels; the image is sent as is.
- Tool results are named by function (``tool_name``), as Ollama's templates name
  them, found from the ``tool_call_id`` in the earlier assistant turn.
"""

from __future__ import annotations

import json

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.images import image_reference
from ollama_proxy.translate.openai_common import (
    OPTION_FIELDS,
    passthrough,
    sampling_options,
    stream_flag,
    think_from_effort,
)

_MAPPED = frozenset({"messages", "tools", "tool_choice", "response_format", "reasoning_effort",
                     "reasoning", "stream", *OPTION_FIELDS})

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}

#: Roles whose ``content`` may be null (OpenAI: an assistant turn with only tool calls).
_NULL_CONTENT_ROLES = {"assistant", "function"}



def from_openai_chat(body: dict) -> dict:
    """Translate an OpenAI chat completions request into an Ollama /api/chat body."""
    ollama = passthrough(body, _MAPPED)
    ollama["messages"] = from_openai_messages(body.get("messages"))
    tools = _select_tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        ollama["tools"] = tools
    options = sampling_options(body)
    if options:
        ollama["options"] = options
    if "format" not in ollama:
        fmt = _format(body.get("response_format"))
        if fmt is not None:
            ollama["format"] = fmt
    if "think" not in ollama:
        think = _think(body)
        if think is not None:
            ollama["think"] = think
    # Always sent: Ollama streams by default, OpenAI does not.
    ollama["stream"] = stream_flag(body)
    return ollama


def from_openai_messages(messages: object) -> list[dict]:
    """Translate OpenAI chat messages into Ollama messages."""
    if not isinstance(messages, list) or not messages:
        # An empty list would make Ollama load the model and answer nothing.
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    call_names: dict[str, str] = {}
    return [_from_message(message, f"messages[{i}]", call_names) for i, message in enumerate(messages)]


def _from_message(message: object, where: str, call_names: dict[str, str]) -> dict:
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"{where}.role must be one of {', '.join(_ROLES)}", param=f"{where}.role")
    out = {key: value for key, value in message.items()
           if key not in ("content", "tool_calls", "reasoning_content", "reasoning")}
    out["role"] = _ROLES[role]
    text, images = _content(message.get("content"), role, where)
    out["content"] = text
    if images:
        out["images"] = [*(message.get("images") or []), *images]
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        out["thinking"] = thinking
    if message.get("tool_calls"):
        out["tool_calls"] = _from_tool_calls(message["tool_calls"], f"{where}.tool_calls", call_names)
    if out["role"] == "tool":
        _name_tool_result(out, call_names)
    return out


def _name_tool_result(out: dict, call_names: dict[str, str]) -> None:
    # Ollama's templates name a tool result by function name, not by call id.
    name = out.pop("name", None) or call_names.get(out.get("tool_call_id"))
    if name:
        out["tool_name"] = name


def _content(content: object, role: str, where: str) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if content is None:
        if role in _NULL_CONTENT_ROLES:
            return "", []
        raise InvalidRequest(f"{where}.content is required for {role} messages", param=f"{where}.content")
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    texts, images = [], []
    for j, part in enumerate(content):
        kind, value = _content_part(part, f"{where}.content[{j}]")
        (texts if kind == "text" else images).append(value)
    # Parts are joined with a newline, as vLLM does: adjacent parts must not run together.
    return "\n".join(texts), images


def _content_part(part: object, where: str) -> tuple[str, str]:
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    kind = part.get("type")
    if kind in ("text", "refusal"):  # a refusal is the assistant's own earlier words
        text = part.get(kind)
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.{kind} must be a string", param=f"{where}.{kind}")
        return "text", text
    if kind == "image_url":
        image = part.get("image_url")
        # Ollama takes no "detail": the model sees the image at its own resolution.
        url = image.get("url") if isinstance(image, dict) else image
        param = f"{where}.image_url.url" if isinstance(image, dict) else f"{where}.image_url"
        if not isinstance(url, str):
            raise InvalidRequest(f"{param} must be a string", param=param)
        return "image", image_reference(url, param)
    raise InvalidRequest(f"content part type {kind!r} is not supported: Ollama takes text and image_url parts",
                         param=f"{where}.type")


def _from_tool_calls(calls: object, where: str, call_names: dict[str, str]) -> list[dict]:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be a list", param=where)
    converted = [_from_tool_call(call, f"{where}[{j}]") for j, call in enumerate(calls)]
    for call in converted:
        if isinstance(call.get("id"), str):
            call_names[call["id"]] = call["function"]["name"]
    return converted


def _from_tool_call(call: object, where: str) -> dict:
    if not isinstance(call, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    if call.get("type", "function") != "function":
        raise InvalidRequest(f"tool call type {call['type']!r} is not supported: Ollama takes function calls",
                             param=f"{where}.type")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where}.function.name must be a string", param=f"{where}.function.name")
    out = {key: value for key, value in call.items() if key not in ("type", "function")}
    out["function"] = {**function, "arguments": _arguments(function.get("arguments"), f"{where}.function.arguments")}
    return out


def _arguments(arguments: object, where: str) -> dict:
    if arguments is None or arguments == "":  # some clients send "" for a call without arguments
        return {}
    if isinstance(arguments, dict):  # already decoded: accepted, as Ollama's native API takes it
        return arguments
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{where} must be a JSON string", param=where)
    try:
        decoded = json.loads(arguments)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"{where} is not valid JSON: {error}", param=where) from None
    if not isinstance(decoded, dict):
        raise InvalidRequest(f"{where} must encode a JSON object", param=where)
    return decoded


def _select_tools(tools: object, tool_choice: object) -> list | None:
    """Return the tools to send; Ollama cannot force a call, only narrow the offer."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    if tool_choice is None or tool_choice in ("auto", "required"):
        return tools
    if tool_choice == "none":
        return None
    names = _chosen_names(tool_choice)
    chosen = [tool for tool in tools if _tool_name(tool) in names]
    if not chosen:
        raise InvalidRequest(f"tool_choice names no tool in tools: {', '.join(sorted(names))}",
                             param="tool_choice")
    return chosen


def _chosen_names(tool_choice: object) -> set[str]:
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = _tool_name(tool_choice)
        if name:
            return {name}
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "allowed_tools":
        allowed = tool_choice.get("allowed_tools") or {}
        names = {_tool_name(tool) for tool in allowed.get("tools") or []} - {None}
        if names:
            return names
    raise InvalidRequest('tool_choice must be "none", "auto", "required", {"type": "function", '
                         '"function": {"name": ...}} or {"type": "allowed_tools", ...}', param="tool_choice")


def _tool_name(tool: object) -> str | None:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _format(response_format: object) -> str | dict | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        # A json_schema without a schema asks for any JSON: that is Ollama's JSON mode.
        return schema if isinstance(schema, dict) else "json"
    raise InvalidRequest('response_format.type must be "text", "json_object" or "json_schema"',
                         param="response_format.type")


def _think(body: dict) -> bool | str | None:
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise InvalidRequest("reasoning must be an object", param="reasoning")
    if reasoning and reasoning.get("effort") is not None:
        effort, param = reasoning["effort"], "reasoning.effort"
    elif body.get("reasoning_effort") is not None:
        effort, param = body["reasoning_effort"], "reasoning_effort"
    else:
        return None
    return think_from_effort(effort, param)
