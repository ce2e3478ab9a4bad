"""Translate an Anthropic Messages request into an Ollama ``/api/chat`` body.

| field | becomes |
|---|---|
| ``system`` (a string or text blocks) | a leading ``system`` message |
| ``messages`` | Ollama messages, block by block (see ``conversation``) |
| ``tools`` (``input_schema``) | Ollama function tools; server tools (web search ...) are refused |
| ``tool_choice`` | ``none``: no tools; ``auto``, ``any``: every tool; ``{type: tool, name}``: only that tool |
| ``max_tokens`` (required, as Anthropic requires) | ``options.num_predict`` |
| ``temperature``, ``top_p``, ``top_k`` | ``options`` |
| ``stop_sequences`` | ``options.stop`` |
| ``thinking.type``: ``enabled``, ``adaptive``, ``between_tools`` | ``think: true``, or the effort's level (below) |
| ``thinking.type``: ``disabled`` | ``think: false`` |
| ``output_config.format``, ``output_format`` (``json_schema``) | ``format``: the schema |
| ``stream`` | ``stream``, always sent (Anthropic's default is false, Ollama's true) |
| ``metadata``, ``service_tier``, ``container``, ``mcp_servers`` ... | dropped: Anthropic's own services (below) |
| ``options``, ``num_ctx`` (Ollama's own) | ``options``, winning over the mapped ones |
| anything else (``keep_alive``, ``think``, ``format``, unknown fields) | copied as it came; ``think``, ``format`` win |

What Ollama cannot do, and what is done instead:

- ``tool_choice``: Ollama cannot force a tool call. ``any`` offers every tool,
  ``{type: tool, name}`` offers only that tool, ``none`` offers none; the model
  may still answer in text. ``disable_parallel_tool_use`` is ignored: Ollama
  has no such switch.
- ``thinking.budget_tokens``: Ollama's ``think`` is on/off or a level, never a
  budget. ``output_config.effort`` becomes the level (``low``, ``medium``,
  ``high``, ``max``; ``xhigh`` -> ``high``) when thinking is on. Effort alone
  does not turn it on: Ollama refuses ``think`` for models that cannot think.
- ``thinking`` for a model without the ``thinking`` capability: Claude Code
  asks for thinking on every turn, whatever the model, and Ollama would refuse
  it (400 ``does not support thinking``). The ``think`` it becomes is left out
  (``translate.thinking``, on the model's ``/api/show`` capabilities), as
  Ollama's own Anthropic layer does, and the model answers without thinking.
  Ollama's own ``think``, sent as a field, is the client's and stays.
- ``thinking.display`` (``omitted``, ``summarized``): the thinking Ollama
  returns is shown whole; Ollama has no summaries.
- ``metadata`` (a user id for Anthropic's abuse tracking), ``service_tier``
  (Anthropic's capacity tiers), ``container`` (Anthropic's code-execution
  sandbox) and ``mcp_servers`` (Anthropic's server-side MCP connector) ask for
  things only Anthropic's servers do: dropped. So are ``cache_control`` (and
  the blocks' own: Ollama reuses a shared prompt prefix by itself),
  ``context_management``, ``diagnostics``, ``inference_geo``, ``speed``,
  ``user_profile_id`` and ``workspace_id``.
- Server tools (web search, code execution, ...) run on Anthropic's servers:
  refused rather than faked.
"""

from __future__ import annotations

from typing import Any

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.anthropic._common import required_string
from ollama_proxy.translate.anthropic.conversation import conversation_messages, system_messages

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


def from_anthropic_messages(body: dict) -> dict:
    """Translate an Anthropic Messages request into an Ollama ``/api/chat`` body."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a model name is required", param="model")
    ollama: dict[str, Any] = {
        "model": model,
        "messages": system_messages(body.get("system")) + conversation_messages(body.get("messages")),
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
    function = {"name": required_string(tool, "name", where)}
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
