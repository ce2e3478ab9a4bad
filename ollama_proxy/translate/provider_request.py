"""Turn Ollama requests into requests for an OpenAI-compatible provider.

The reverse of ``openai_chat``: an Ollama client's ``/api/chat``,
``/api/generate``, ``/api/embed`` and ``/api/embeddings`` bodies become
``/chat/completions`` and ``/embeddings`` bodies. Fields are *mapped*
(translated, not sent as themselves), *dropped* (Ollama-only settings about a
local model that a provider would reject: ``OLLAMA_ONLY_FIELDS``), or *passed
through* unchanged (anything else, so a provider's own extensions still reach
it), but for the fields that pick another model (``provider_fields``), which
are refused. A key is matched as a Go server matches it (in any case), so a
field the translation writes is the only one the provider reads under that
name. The provider is always asked for a stream with usage in its last chunk.

| Ollama field | sent to the provider as |
|---|---|
| ``messages[].images`` | ``image_url`` content parts with ``data:`` URIs (media type from the image's bytes) |
| ``messages[].tool_calls`` | ``tool_calls``, arguments as JSON strings, ids ``call_<n>`` unless the client gave one |
| ``tool`` messages (``tool_name``) | ``tool_call_id``: the call they answer (below) |
| ``messages[].thinking`` | ``reasoning_content`` |
| ``tools`` | ``tools`` |
| ``format`` | ``"json"``: ``response_format: {"type": "json_object"}``; a schema: ``{"type": "json_schema", ...}`` |
| ``options.num_predict`` | ``max_tokens`` (a negative one, Ollama's "no limit", sends none) |
| ``options.temperature``, ``top_p``, ``seed``, ``stop`` | the same names at the top level |
| ``options.frequency_penalty``, ``presence_penalty`` | the same names at the top level |
| ``options.top_k``, ``min_p`` | the same names (DashScope, SiliconFlow, OpenRouter and vLLM take them) |
| other ``options`` (``num_ctx``, ``num_gpu``, ``repeat_penalty`` ...) | dropped: they tune a local runtime |
| ``think`` | the preset's thinking switch (``thinking_fields``) |
| ``keep_alive``, ``truncate``, ``shift``, ``stream`` | dropped: Ollama's runtime settings |
| ``models``, ``route`` (OpenRouter's fallback list) | refused (400 naming the field): see ``provider_fields`` |
| anything else (``logprobs``, ``user``, a provider's own fields) | passed on untouched |
| ``/api/generate``: ``system``, ``prompt``, ``images`` | a system message and a user message |
| ``/api/generate``: ``raw: true``, ``suffix``, ``context``, ``template`` | refused (400 naming the field) |
| ``/api/embed``: ``input``, ``dimensions`` | ``input``, ``dimensions``, with ``encoding_format: "float"`` |
| ``/api/embeddings``: ``prompt`` | ``input`` |

A ``tool`` message without a ``tool_call_id`` answers the earliest unanswered
call of its ``tool_name`` in the last assistant turn, or else the earliest
unanswered call at all. ``raw``, ``suffix``, ``context`` and ``template`` ask
for what only a raw completion endpoint can do; a provider's chat endpoint
cannot honour them.
"""

from __future__ import annotations

import json

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.go_names import fold
from ollama_proxy.translate.provider_fields import refuse_model_choosing, with_fields

#: Ollama fields about the local runtime, which no provider knows: dropped.
OLLAMA_ONLY_FIELDS = frozenset({"keep_alive", "truncate", "shift", "stream"})

#: Ollama ``options`` sent under the same name at the top level.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "top_k", "min_p")

_CHAT_MAPPED = frozenset({"model", "messages", "tools", "format", "options", "think"})
_GENERATE_MAPPED = _CHAT_MAPPED | {"prompt", "system", "images", "suffix", "raw", "context", "template"}
_EMBED_MAPPED = frozenset({"model", "input", "prompt", "options", "dimensions"})
_MESSAGE_MAPPED = frozenset({"role", "content", "images", "tool_calls", "thinking", "tool_name"})

# Base64 starts of the image formats providers take, for the data: URI's media type.
_IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                ("UklGR", "image/webp"))


def to_provider_chat(ollama_body: dict, thinking_switch: str | None = None) -> dict:
    """Build a ``/chat/completions`` body from an Ollama ``/api/chat`` body."""
    written = {"model": ollama_body["model"], "messages": to_provider_messages(ollama_body.get("messages") or [])}
    return _chat_request(ollama_body, _CHAT_MAPPED, written, thinking_switch)


def to_provider_generate(ollama_body: dict, thinking_switch: str | None = None) -> dict:
    """Build a ``/chat/completions`` body from an Ollama ``/api/generate`` body."""
    _refuse_generate_only(ollama_body)
    messages = []
    if ollama_body.get("system"):
        messages.append({"role": "system", "content": ollama_body["system"]})
    messages.append({"role": "user", "content": ollama_body.get("prompt") or "",
                     "images": ollama_body.get("images") or []})
    written = {"model": ollama_body["model"], "messages": to_provider_messages(messages)}
    return _chat_request(ollama_body, _GENERATE_MAPPED, written, thinking_switch)


def to_provider_embeddings(ollama_body: dict) -> dict:
    """Build an ``/embeddings`` body from an ``/api/embed`` or ``/api/embeddings`` body."""
    written = {"model": ollama_body["model"],
               "input": ollama_body["input"] if "input" in ollama_body else ollama_body.get("prompt", "")}
    if ollama_body.get("dimensions") is not None:
        written["dimensions"] = ollama_body["dimensions"]
    written["encoding_format"] = "float"
    return with_fields(_unmapped_fields(ollama_body, _EMBED_MAPPED), written)


def _refuse_generate_only(ollama_body: dict) -> None:
    """Refuse what only a raw completion endpoint can do: a chat endpoint cannot."""
    if ollama_body.get("raw"):
        raise InvalidRequest("raw is not supported for provider models: they take chat messages, "
                             "not a prompt in the model's own template", param="raw")
    for field, why in (("suffix", "fill-in-the-middle needs a completion endpoint"),
                       ("context", "a provider cannot continue from Ollama's token context; send the "
                                   "conversation to /api/chat"),
                       ("template", "a provider applies its own template")):
        if ollama_body.get(field):
            raise InvalidRequest(f"{field} is not supported for provider models: {why}", param=field)


def _chat_request(ollama_body: dict, mapped: frozenset[str], written: dict, thinking_switch: str | None) -> dict:
    """Return the unmapped fields of the body with ``written`` and the fields every chat request gets."""
    if ollama_body.get("tools"):
        written["tools"] = ollama_body["tools"]
    if ollama_body.get("format"):
        written["response_format"] = to_response_format(ollama_body["format"])
    written.update(to_provider_options(ollama_body.get("options")))
    if ollama_body.get("think") is not None:
        written.update(thinking_fields(ollama_body["think"], thinking_switch))
    written["stream"] = True
    written["stream_options"] = {"include_usage": True}
    return with_fields(_unmapped_fields(ollama_body, mapped), written)


def to_provider_messages(messages: list[dict]) -> list[dict]:
    """Map Ollama messages; tool results find the id of the call they answer."""
    out: list[dict] = []
    pending: list[dict] = []  # calls of the last assistant turn still waiting for a result
    calls_seen = 0
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        written = {"role": message.get("role"),
                   "content": _content(message.get("content") or "", message.get("images") or [], param)}
        if message.get("thinking"):
            written["reasoning_content"] = message["thinking"]
        if message.get("tool_calls"):
            written["tool_calls"] = [_tool_call(call, calls_seen + n, f"{param}.tool_calls[{n}]")
                                     for n, call in enumerate(message["tool_calls"])]
            calls_seen += len(written["tool_calls"])
            pending = list(written["tool_calls"])
        if message.get("role") == "tool" and "tool_call_id" not in message:
            written["tool_call_id"] = _answered_call(pending, message.get("tool_name"), param)
        out.append(with_fields(_passthrough(message, _MESSAGE_MAPPED), written))
    return out


def _content(text: str, images: list[str], param: str) -> str | list[dict]:
    if not images:
        return text
    parts: list[dict] = [{"type": "text", "text": text}] if text else []
    for n, image in enumerate(images):
        if not isinstance(image, str):
            raise InvalidRequest("an image must be a base64 string", param=f"{param}.images[{n}]")
        parts.append({"type": "image_url", "image_url": {"url": image_data_uri(image)}})
    return parts


def image_data_uri(image: str) -> str:
    """Wrap Ollama's base64 image in a ``data:`` URI with the media type its bytes show."""
    if image.startswith(("data:", "http://", "https://")):
        return image
    mime = next((kind for magic, kind in _IMAGE_MAGIC if image.startswith(magic)), "image/png")
    return f"data:{mime};base64,{image}"


def _tool_call(call: dict, number: int, param: str) -> dict:
    function = call.get("function") or {}
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    if not function.get("name"):
        raise InvalidRequest("a tool call needs function.name", param=f"{param}.function.name")
    return {"id": call.get("id") or f"call_{number}", "type": "function",
            "function": {"name": function["name"], "arguments": arguments}}


def _answered_call(pending: list[dict], tool_name: str | None, param: str) -> str:
    """Take the earliest pending call with this name (or the earliest at all) and return its id."""
    if not pending:
        raise InvalidRequest("a tool message must follow an assistant message that called the tool",
                             param=param)
    call = next((c for c in pending if c["function"]["name"] == tool_name), pending[0])
    pending.remove(call)
    return call["id"]


def to_response_format(fmt: object) -> dict:
    """Map Ollama's ``format`` (``"json"`` or a JSON schema) to ``response_format``."""
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    raise InvalidRequest('format must be "json" or a JSON schema object', param="format")


def to_provider_options(options: dict | None) -> dict:
    """Map the Ollama ``options`` a provider knows; local-runtime ones are dropped."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidRequest("options must be an object", param="options")
    fields = {name: options[name] for name in _SAME_NAME_OPTIONS if options.get(name) is not None}
    if options.get("num_predict") is not None and options["num_predict"] >= 0:
        fields["max_tokens"] = options["num_predict"]  # Ollama's -1 means "no limit": send none
    if options.get("stop"):
        fields["stop"] = options["stop"]
    return fields


def thinking_fields(think: bool | str, switch: str | None) -> dict:
    """Return the request fields that carry Ollama's ``think`` for a provider's switch."""
    on = think not in (False, "none")
    level = think if isinstance(think, str) and on else "medium"
    if switch == "enable_thinking":
        return {"enable_thinking": on}
    if switch == "thinking_type":
        return {"thinking": {"type": "enabled" if on else "disabled"}}
    if switch == "reasoning":
        return {"reasoning": {"effort": level} if on else {"enabled": False}}
    if switch == "reasoning_effort":
        return {"reasoning_effort": level if on else "minimal"}
    return {}  # the model decides: DeepSeek thinks with deepseek-reasoner, not with deepseek-chat


def _passthrough(body: dict, mapped: frozenset[str]) -> dict:
    """Return the fields of an Ollama body that go on as they are (matched in any case, as Go matches them)."""
    skip = {fold(name) for name in mapped | OLLAMA_ONLY_FIELDS}
    return {key: value for key, value in body.items() if fold(key) not in skip}


def _unmapped_fields(ollama_body: dict, mapped: frozenset[str]) -> dict:
    """Return the top-level fields that go on as they are; refuse those that pick another model."""
    passed = _passthrough(ollama_body, mapped)
    refuse_model_choosing(passed)
    return passed
