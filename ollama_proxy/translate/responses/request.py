"""Translate a Responses API request (stateless) into an Ollama ``/api/chat`` body.

Request fields, by what becomes of them:

- mapped: ``input`` and ``instructions`` (messages), ``tools`` with
  ``tool_choice``, ``reasoning.effort`` (``think``), ``max_output_tokens``,
  ``temperature`` and ``top_p`` (``options``), ``text.format`` (``format``),
  ``include: ["message.output_text.logprobs"]`` with ``top_logprobs``
  (``logprobs``, ``top_logprobs``), ``stream``. Ollama's own ``options``,
  ``think`` and ``format`` win over their Responses counterparts when a client
  sends both; ``num_ctx`` becomes ``options.num_ctx``.
- refused: anything that needs stored state (``previous_response_id``,
  ``conversation``, ``prompt``, ``store: true``, ``background: true``), and a
  ``tool_choice`` that forces a tool Ollama cannot run; which tools are sent or
  left out is said in ``tools``, what ``input`` may hold in ``conversation``.
- dropped, being the gateway's business or having no Ollama counterpart:
  ``parallel_tool_calls`` (Ollama cannot limit calls), ``max_tool_calls``,
  ``truncation`` (Ollama trims to ``num_ctx`` itself), ``metadata``, ``user``,
  ``safety_identifier``, ``service_tier``, ``prompt_cache_*`` (Ollama reuses
  its cache unasked), ``stream_options``, ``store: false``, ``reasoning.summary``
  (the whole thinking is returned as the summary), ``text.verbosity``, the other
  ``include`` values, ``client_metadata`` (Codex's ids of its session), and the
  rest of ``_DROPPED``. Those the Response object carries are echoed back in it,
  as OpenAI does.
- passed through: every other field, unchanged (``null`` ones left out: some
  Ollama fields fail to decode ``null``).

``reasoning.effort`` on a model without the ``thinking`` capability: the
``think`` it becomes is left out (``translate.thinking``), as Ollama would refuse it.

Ollama cannot force a tool call: ``tool_choice`` ``required`` sends the tools
like ``auto``; ``none`` sends none; a named function or ``allowed_tools`` sends
only those.
"""

from __future__ import annotations

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_common import think_from_effort, with_explicit_options
from ollama_proxy.translate.responses.conversation import conversation_messages
from ollama_proxy.translate.responses.tools import ToolSet

#: Fields that need a stored response, conversation or prompt; the reason is
#: part of the error message.
_STATEFUL = {
    "previous_response_id": "responses are not stored; send the whole conversation as input",
    "conversation": "conversations are not stored; send the whole conversation as input",
    "prompt": "stored prompts are not available; send instructions and input instead",
}

_MAPPED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "reasoning",
                     "max_output_tokens", "temperature", "top_p", "top_logprobs", "text",
                     "include", "stream", "options", "num_ctx", *_STATEFUL})

_DROPPED = frozenset({"parallel_tool_calls", "max_tool_calls", "truncation", "metadata", "user",
                      "safety_identifier", "service_tier", "prompt_cache_key",
                      "prompt_cache_retention", "prompt_cache_options", "stream_options", "store",
                      "background", "background_options", "context_management", "moderation",
                      "access_programs", "image", "client_metadata"})

_LOGPROBS_INCLUDE = "message.output_text.logprobs"


def from_responses_request(body: dict) -> dict:
    """Translate a Responses API request body into an Ollama /api/chat body."""
    _refuse_stateful(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required", param="model")
    ollama = {key: value for key, value in body.items()
              if key not in _MAPPED and key not in _DROPPED and value is not None}
    ollama["model"] = model
    declared = ToolSet.of(body)
    ollama["messages"] = conversation_messages(body, declared)
    tools = declared.ollama_tools(body.get("tool_choice"))
    if tools:
        ollama["tools"] = tools
    options = _options(body)
    if options:
        ollama["options"] = options
    _set_absent(ollama, "think", _think(body.get("reasoning")))
    _set_absent(ollama, "format", _format(body.get("text")))
    ollama.update(_logprobs_request(body))
    # Always sent: Ollama streams by default, the Responses API does not.
    ollama["stream"] = _flag(body, "stream")
    return ollama


def _refuse_stateful(body: dict) -> None:
    for field, reason in _STATEFUL.items():
        if body.get(field) is not None:
            raise InvalidRequest(f"{field} is not supported: this gateway is stateless and {reason}",
                                 param=field)
    if _flag(body, "store"):
        raise InvalidRequest("store: true is not supported: this gateway is stateless and does not "
                             "store responses; set store to false or leave it out", param="store")
    if _flag(body, "background"):
        raise InvalidRequest("background: true is not supported: it needs stored responses to poll; "
                             "use stream instead", param="background")


def _set_absent(ollama: dict, key: str, value: object) -> None:
    # The client's own Ollama field, copied through, wins over the mapped one.
    if value is not None and key not in ollama:
        ollama[key] = value


def _options(body: dict) -> dict:
    options = {}
    for field, option in (("temperature", "temperature"), ("top_p", "top_p"),
                          ("max_output_tokens", "num_predict"), ("num_ctx", "num_ctx")):
        if body.get(field) is not None:
            options[option] = body[field]
    return with_explicit_options(options, body)


def _think(reasoning: object) -> bool | str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise InvalidRequest("reasoning must be an object", param="reasoning")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    return think_from_effort(effort, "reasoning.effort")


def _format(text: object) -> str | dict | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise InvalidRequest("text must be an object", param="text")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = fmt.get("schema")
        # A json_schema without a schema asks for any JSON: that is Ollama's JSON mode.
        return schema if isinstance(schema, dict) else "json"
    raise InvalidRequest('text.format.type must be "text", "json_object" or "json_schema"',
                         param="text.format.type")


def _logprobs_request(body: dict) -> dict:
    include = body.get("include") or []
    if not isinstance(include, list):
        raise InvalidRequest("include must be a list", param="include")
    out = {}
    if _LOGPROBS_INCLUDE in include:
        out["logprobs"] = True
    if body.get("top_logprobs") is not None:
        out["top_logprobs"] = body["top_logprobs"]
    return out


def _flag(body: dict, key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{key} must be true or false", param=key)
    return value
