"""Translate the OpenAI Responses API (stateless) to and from Ollama's ``/api/chat``.

Request fields, by what becomes of them:

- mapped: ``input`` and ``instructions`` (messages), ``tools`` with
  ``tool_choice``, ``reasoning.effort`` (``think``), ``max_output_tokens``,
  ``temperature`` and ``top_p`` (``options``), ``text.format`` (``format``),
  ``include: ["message.output_text.logprobs"]`` with ``top_logprobs``
  (``logprobs``, ``top_logprobs``), ``stream``. Ollama's own ``options``,
  ``think`` and ``format`` win over their Responses counterparts when a client
  sends both; ``num_ctx`` becomes ``options.num_ctx``.
- refused: anything that needs stored state (``previous_response_id``,
  ``conversation``, ``prompt``, ``store: true``, ``background: true``, an
  ``item_reference`` or a ``file_id``), tools other than functions, and input
  Ollama cannot take (``input_file`` parts, hosted-tool call items).
- dropped, being the gateway's business or having no Ollama counterpart:
  ``parallel_tool_calls`` (Ollama cannot limit calls), ``max_tool_calls``,
  ``truncation`` (Ollama trims to ``num_ctx`` itself), ``metadata``, ``user``,
  ``safety_identifier``, ``service_tier``, ``prompt_cache_*`` (Ollama reuses
  its cache unasked), ``stream_options``, ``store: false``, ``reasoning.summary``
  (the whole thinking is returned as the summary), ``text.verbosity``, the other
  ``include`` values, and the rest of ``_DROPPED``. Those the Response object
  carries are echoed back in it, as OpenAI does.
- passed through: every other field, unchanged (``null`` ones left out: some
  Ollama fields fail to decode ``null``).

Ollama cannot force a tool call: ``tool_choice`` ``required`` sends the tools
like ``auto``; ``none`` sends none; a named function or ``allowed_tools`` sends
only those.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.images import image_reference
from ollama_proxy.translate.openai_common import think_from_effort, with_explicit_options

NewId = Callable[[str], str]

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
                      "access_programs", "image"})


_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}

_LOGPROBS_INCLUDE = "message.output_text.logprobs"

#: Request fields the Response object echoes as sent (``None`` when absent).
_ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "reasoning", "temperature",
           "top_p", "top_logprobs", "truncation", "user", "safety_identifier", "prompt_cache_key",
           "service_tier")


# --- request ---------------------------------------------------------------------------

def from_responses_request(body: dict) -> dict:
    """Translate a Responses API request body into an Ollama /api/chat body."""
    _refuse_stateful(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required", param="model")
    ollama = {key: value for key, value in body.items()
              if key not in _MAPPED and key not in _DROPPED and value is not None}
    ollama["model"] = model
    ollama["messages"] = _messages(body)
    tools = _select_tools(body.get("tools"), body.get("tool_choice"))
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


def _messages(body: dict) -> list[dict]:
    messages = []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("instructions must be a string", param="instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        history = _History()
        for index, item in enumerate(items):
            history.add(item, f"input[{index}]")
        messages.extend(history.messages)
    elif items is not None:
        raise InvalidRequest("input must be a string or a list of items", param="input")
    if not messages:
        # An empty conversation would make Ollama load the model and answer nothing.
        raise InvalidRequest("input is required", param="input")
    return messages


class _History:
    """Collect Ollama messages from Responses input items, in order."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.thinking = ""  # a reasoning item waits for the assistant turn it belongs to
        self.tool_names: dict[str, str] = {}

    def add(self, item: object, param: str) -> None:
        """Append the Ollama form of one input item."""
        if not isinstance(item, dict):
            raise InvalidRequest("input items must be objects", param=param)
        kind = item.get("type") or ("message" if "role" in item else None)
        handler = {"message": self._message, "function_call": self._function_call,
                   "function_call_output": self._function_output,
                   "reasoning": self._reasoning}.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            handler(item, param)
        elif kind == "item_reference":
            raise InvalidRequest("item_reference is not supported: this gateway is stateless and "
                                 "stores no items; send the item itself", param=param)
        else:
            raise InvalidRequest(f"input item type {kind!r} is not supported: use message, function_call, "
                                 "function_call_output or reasoning", param=f"{param}.type")

    def _message(self, item: dict, param: str) -> None:
        role = item.get("role")
        role = _ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise InvalidRequest("role must be one of user, assistant, system, developer",
                                 param=f"{param}.role")
        text, images = _content(item.get("content"), f"{param}.content")
        message = {"role": role, "content": text}
        if images:
            message["images"] = images
        self._append(message)

    def _function_call(self, item: dict, param: str) -> None:
        name, call_id = item.get("name"), item.get("call_id")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("function_call needs a name", param=f"{param}.name")
        call = {"function": {"name": name, "arguments": _arguments(item.get("arguments"), param)}}
        if isinstance(call_id, str) and call_id:
            call["id"] = call_id
            self.tool_names[call_id] = name
        last = self.messages[-1] if self.messages else None
        # Parallel calls, and the text said before them, are one assistant turn.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            self._attach_thinking(last)
        else:
            self._append({"role": "assistant", "content": "", "tool_calls": [call]})

    def _function_output(self, item: dict, param: str) -> None:
        call_id = item.get("call_id") if isinstance(item.get("call_id"), str) else None
        text, images = _content(item.get("output"), f"{param}.output")
        message = {"role": "tool", "content": text}
        name = self.tool_names.get(call_id) or item.get("name")
        if name:
            message["tool_name"] = name
        if call_id:
            message["tool_call_id"] = call_id
        if images:
            message["images"] = images
        self._append(message)

    def _reasoning(self, item: dict, param: str) -> None:
        # encrypted_content is opaque (another server's): only readable text is kept.
        parts = item.get("summary") or item.get("content") or []
        if not isinstance(parts, list):
            raise InvalidRequest("reasoning summary must be a list", param=f"{param}.summary")
        text = "\n\n".join(part.get("text") or "" for part in parts if isinstance(part, dict))
        self.thinking += text

    def _append(self, message: dict) -> None:
        if message["role"] == "assistant":
            self._attach_thinking(message)
        else:
            # Reasoning not followed by its assistant turn has nothing to explain.
            self.thinking = ""
        self.messages.append(message)

    def _attach_thinking(self, message: dict) -> None:
        if self.thinking:
            message["thinking"] = message.get("thinking", "") + self.thinking
            self.thinking = ""


def _arguments(arguments: object, param: str) -> dict:
    if arguments is None or arguments == "":
        return {}
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        raise InvalidRequest("function_call arguments must be a JSON object", param=f"{param}.arguments") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("function_call arguments must be a JSON object", param=f"{param}.arguments")
    return parsed


def _content(content: object, param: str) -> tuple[str, list[str]]:
    """Return the text and the images of a message's content or a tool's output."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of parts", param=param)
    texts, images = [], []
    for index, part in enumerate(content):
        part_param = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "refusal"):
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{kind} part needs a text string", param=part_param)
            texts.append(text)
        elif kind == "input_image":
            images.append(_image(part, part_param))
        elif kind == "input_file":
            raise InvalidRequest("input_file parts are not supported: Ollama takes text and images only",
                                 param=part_param)
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported: use input_text, "
                                 "output_text or input_image", param=part_param)
    return "\n".join(texts), images


def _image(part: dict, param: str) -> str:
    if part.get("file_id") is not None:
        raise InvalidRequest("input_image file_id is not supported: this gateway stores no files; "
                             "send image_url as a data: URI or an http(s) URL", param=f"{param}.file_id")
    url = part.get("image_url")
    if isinstance(url, dict):  # the Chat Completions shape, {"url": ...}, sent here by mistake
        url = url.get("url")
    if not isinstance(url, str):
        raise InvalidRequest("input_image needs an image_url", param=f"{param}.image_url")
    return image_reference(url, f"{param}.image_url")


def _select_tools(tools: object, tool_choice: object) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise InvalidRequest("tools must be a list of objects", param="tools")
    hosted = sorted({str(tool.get("type")) for tool in tools if tool.get("type") != "function"})
    if hosted:
        raise InvalidRequest(f"tools of type {', '.join(hosted)} are not supported: "
                             "Ollama runs function tools only", param="tools")
    converted = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    allowed = _allowed_names(tool_choice, [tool["function"]["name"] for tool in converted])
    return [tool for tool in converted if allowed is None or tool["function"]["name"] in allowed]


def _tool(tool: dict, param: str) -> dict:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("function tools need a name", param=f"{param}.name")
    function = {"name": name}
    # strict has no Ollama counterpart: tool arguments are not constrained there.
    for key in ("description", "parameters"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _allowed_names(tool_choice: object, names: list[str]) -> set[str] | None:
    """Return the tool names ``tool_choice`` allows, or None for all of them."""
    if tool_choice in (None, "auto", "required"):
        return None
    if tool_choice == "none":
        return set()
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if kind == "function":
        chosen = {str(tool_choice.get("name"))}
    elif kind == "allowed_tools" and isinstance(tool_choice.get("tools"), list):
        chosen = {str(tool.get("name")) for tool in tool_choice["tools"]
                  if isinstance(tool, dict) and tool.get("type") == "function"}
    else:
        raise InvalidRequest('tool_choice must be "none", "auto", "required", a function '
                             'or allowed_tools with function tools', param="tool_choice")
    unknown = sorted(chosen - set(names))
    if unknown:
        raise InvalidRequest(f"tool_choice names tools not in tools: {', '.join(unknown)}",
                             param="tool_choice")
    return chosen


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


# --- response --------------------------------------------------------------------------

def to_responses_response(ollama_resp: dict, *, response_id: str, created_at: int, model: str,
                          new_id: NewId, request: dict) -> dict:
    """Translate a complete Ollama /api/chat response into a Responses API response."""
    message = ollama_resp.get("message") or {}
    truncated = ollama_resp.get("done_reason") == "length"
    output = []
    if message.get("thinking"):
        output.append(_reasoning_item(new_id("rs_"), message["thinking"]))
    text, calls = message.get("content") or "", message.get("tool_calls") or []
    # An empty answer is still a message, so clients always find one.
    if text or not (output or calls):
        status = "incomplete" if truncated else "completed"
        output.append(_message_item(new_id("msg_"), text, _logprobs(ollama_resp), status))
    output.extend(_function_call_item(new_id("fc_"), call, new_id) for call in calls)
    return _response(request, response_id, created_at, model, output=output,
                     status="incomplete" if truncated else "completed", usage=_usage(ollama_resp))


def _response(request: dict, response_id: str, created_at: int, model: str, *, output: list,
              status: str, usage: dict | None = None, error: dict | None = None) -> dict:
    """Build a Response object, echoing the request fields the API echoes."""
    response = {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": model, "output": output, "usage": usage,
        "previous_response_id": None, "store": False, "background": False,
        "tools": request.get("tools") or [],
        "tool_choice": request.get("tool_choice") or "auto",
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "text": request.get("text") or {"format": {"type": "text"}},
        "metadata": request.get("metadata") or {},
    }
    response.update((key, request.get(key)) for key in _ECHOED)
    return response


def _reasoning_item(item_id: str, thinking: str) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": thinking}]}


def _output_text(text: str, logprobs: list) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message_item(item_id: str, text: str, logprobs: list, status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [_output_text(text, logprobs)]}


def _function_call_item(item_id: str, call: dict, new_id: NewId) -> dict:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # Ollama sends an object; the Responses API a JSON string
        arguments = json.dumps(arguments or {}, ensure_ascii=False, separators=(",", ":"))
    return {"id": item_id, "type": "function_call", "status": "completed",
            "call_id": call.get("id") or new_id("call_"), "name": function.get("name") or "",
            "arguments": arguments}


def _usage(ollama_resp: dict) -> dict:
    # Ollama counts neither cached prompt tokens nor thinking tokens apart: 0.
    prompt = ollama_resp.get("prompt_eval_count") or 0
    completion = ollama_resp.get("eval_count") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _logprobs(ollama_chunk: dict) -> list[dict]:
    """Return a chunk's logprobs in OpenAI's shape (Ollama's is the same, fields optional)."""
    return [{**_token_logprob(entry),
             "top_logprobs": [_token_logprob(top) for top in entry.get("top_logprobs") or []]}
            for entry in ollama_chunk.get("logprobs") or []]


def _token_logprob(entry: dict) -> dict:
    token = entry.get("token") or ""
    return {"token": token, "logprob": entry.get("logprob") or 0.0,
            "bytes": entry.get("bytes") or list(token.encode())}


# --- stream ----------------------------------------------------------------------------

class _OpenItem:
    """The reasoning or message item being streamed, and its text so far."""

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind, self.id, self.index = kind, item_id, index
        self.text = ""
        self.logprobs: list[dict] = []

    def final(self, status: str) -> dict:
        """Return the item as it stands, with ``status`` if it is a message."""
        if self.kind == "reasoning":
            return _reasoning_item(self.id, self.text)
        return _message_item(self.id, self.text, self.logprobs, status)


class ResponsesStreamConverter:
    """Turn Ollama /api/chat chunks into Responses API stream events.

    Each output item is opened, filled by deltas and closed before the next one
    starts, in the order Ollama sends thinking, text and tool calls.
    """

    def __init__(self, response_id: str, created_at: int, model: str, *, new_id: NewId,
                 request: dict) -> None:
        self._response_id, self._created_at, self._model = response_id, created_at, model
        self._new_id, self._request = new_id, request
        self._sequence = 0
        self._started = self._finished = False
        self._output: list[dict] = []  # closed items, by output_index
        self._open: _OpenItem | None = None

    def process(self, ollama_chunk: dict) -> list[dict]:
        """Return the events one Ollama chunk adds to the stream."""
        if self._finished:
            return []
        if ollama_chunk.get("error") is not None:
            return self.error(_error_text(ollama_chunk["error"]))
        events = self._start()
        message = ollama_chunk.get("message") or {}
        if message.get("thinking"):
            events += self._delta("reasoning", message["thinking"], [])
        if message.get("content"):
            events += self._delta("message", message["content"], _logprobs(ollama_chunk))
        for call in message.get("tool_calls") or []:
            events += self._function_call(call)
        if ollama_chunk.get("done"):
            events += self._finish(ollama_chunk)
        return events

    def error(self, message: str) -> list[dict]:
        """Return the events that end the stream after an upstream failure."""
        if self._finished:
            return []
        events = self._start()
        output = self._output + ([self._open.final("incomplete")] if self._open else [])
        self._finished = True
        response = self._snapshot("failed", output, error={"code": "server_error", "message": message})
        return events + [self._event("response.failed", response=response)]

    fail = error

    def close(self) -> list[dict]:
        """Return what is owed when the upstream ends: a failure if it never said done."""
        return self.error("the upstream closed the stream before the response was complete")

    @property
    def finished(self) -> bool:
        return self._finished

    def _event(self, kind: str, **fields: object) -> dict:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(self, status: str, output: list, **fields: object) -> dict:
        return _response(self._request, self._response_id, self._created_at, self._model,
                         output=output, status=status, **fields)

    def _start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        return [self._event("response.created", response=self._snapshot("in_progress", [])),
                self._event("response.in_progress", response=self._snapshot("in_progress", []))]

    def _delta(self, kind: str, text: str, logprobs: list[dict]) -> list[dict]:
        events = []
        if self._open is None or self._open.kind != kind:
            events += self._close("completed") + self._open_item(kind)
        item = self._open
        item.text += text
        if kind == "reasoning":
            events.append(self._event("response.reasoning_summary_text.delta", item_id=item.id,
                                      output_index=item.index, summary_index=0, delta=text))
        else:
            item.logprobs += logprobs
            events.append(self._event("response.output_text.delta", item_id=item.id,
                                      output_index=item.index, content_index=0, delta=text,
                                      logprobs=logprobs))
        return events

    def _open_item(self, kind: str) -> list[dict]:
        item_id = self._new_id("rs_" if kind == "reasoning" else "msg_")
        self._open = item = _OpenItem(kind, item_id, len(self._output))
        where = {"item_id": item.id, "output_index": item.index}
        if kind == "reasoning":
            return [self._event("response.output_item.added", output_index=item.index,
                                item={"id": item.id, "type": "reasoning", "summary": []}),
                    self._event("response.reasoning_summary_part.added", **where, summary_index=0,
                                part={"type": "summary_text", "text": ""})]
        added = {"id": item.id, "type": "message", "status": "in_progress", "role": "assistant",
                 "content": []}
        return [self._event("response.output_item.added", output_index=item.index, item=added),
                self._event("response.content_part.added", **where, content_index=0,
                            part=_output_text("", []))]

    def _close(self, status: str) -> list[dict]:
        item, self._open = self._open, None
        if item is None:
            return []
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "reasoning":
            events = [self._event("response.reasoning_summary_text.done", **where, summary_index=0,
                                  text=item.text),
                      self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                                  part={"type": "summary_text", "text": item.text})]
        else:
            events = [self._event("response.output_text.done", **where, content_index=0,
                                  text=item.text, logprobs=item.logprobs),
                      self._event("response.content_part.done", **where, content_index=0,
                                  part=_output_text(item.text, item.logprobs))]
        final = item.final(status)
        self._output.append(final)
        return events + [self._event("response.output_item.done", output_index=item.index, item=final)]

    def _function_call(self, call: dict) -> list[dict]:
        events = self._close("completed")
        item = _function_call_item(self._new_id("fc_"), call, self._new_id)
        index = len(self._output)
        self._output.append(item)
        where = {"item_id": item["id"], "output_index": index}
        added = {**item, "status": "in_progress", "arguments": ""}
        return events + [
            self._event("response.output_item.added", output_index=index, item=added),
            self._event("response.function_call_arguments.delta", **where, delta=item["arguments"]),
            self._event("response.function_call_arguments.done", **where, arguments=item["arguments"]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _finish(self, ollama_chunk: dict) -> list[dict]:
        truncated = ollama_chunk.get("done_reason") == "length"
        events = []
        if not self._output and self._open is None:
            events += self._open_item("message")  # an empty answer is still a message
        events += self._close("incomplete" if truncated else "completed")
        self._finished = True
        status = "incomplete" if truncated else "completed"
        response = self._snapshot(status, list(self._output), usage=_usage(ollama_chunk))
        return events + [self._event(f"response.{status}", response=response)]


def _error_text(error: object) -> str:
    """Return the message of an Ollama ``error`` value (a string, or an object)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return error if isinstance(error, str) else str(error)
