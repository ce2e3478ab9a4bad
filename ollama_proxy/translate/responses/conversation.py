"""Translate Responses ``instructions`` and ``input`` items into Ollama chat messages.

| input | becomes |
|---|---|
| ``instructions`` | a leading ``system`` message |
| ``input`` as a string | one ``user`` message |
| ``message`` items (``user``, ``assistant``, ``system``, ``developer``) | messages; ``developer`` -> ``system`` |
| ``input_text``, ``output_text``, ``refusal`` parts | ``content``, joined with a newline |
| ``input_image`` parts (``image_url``: a ``data:`` URI or an ``http(s)`` URL) | ``images`` |
| ``function_call`` items | ``tool_calls`` of the assistant turn (parallel calls are one turn) |
| their ``namespace`` | qualifies the call's name, as ``tools`` names the function |
| ``function_call_output`` items | ``tool`` messages, named after the call their ``call_id`` answers |
| ``reasoning`` items (``summary`` or ``content`` text) | ``thinking`` of the assistant turn that follows |
| ``additional_tools`` items | nothing here: their tools join ``tools`` |
| items of any other type | dropped |

Parallel calls and their outputs keep their order: calls one after another are
one assistant turn and each output a ``tool`` message after it; an assistant
message replayed between a call and its output joins the call's turn, so the
outputs still follow their calls. Dropped are the items that only a hosted tool or
OpenAI's own state can use: opaque ``encrypted_content`` (of ``reasoning`` and
``compaction`` items), hosted-tool calls (``web_search_call``,
``file_search_call`` ...), and the calls of tools Ollama cannot run with their
outputs (``custom_tool_call``, ``local_shell_call``, ``computer_call`` and their
``*_output`` items, which go together), and types not known yet. Refused is
what changes what the model must answer and cannot be had: what needs stored
state (an ``item_reference``, an image by ``file_id``) and ``input_file`` parts.
"""

from __future__ import annotations

import json

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.images import image_reference
from ollama_proxy.translate.responses.tools import ToolSet

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def conversation_messages(body: dict, tools: ToolSet | None = None) -> list[dict]:
    """Return the Ollama messages of ``instructions`` and ``input``; ``tools`` names the calls."""
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
        history = _History(tools or ToolSet.of(body))
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

    def __init__(self, tools: ToolSet) -> None:
        self.tools = tools
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
        elif not isinstance(kind, str) or not kind:
            raise InvalidRequest("input items need a type (or a role, for a message)", param=f"{param}.type")

    def _message(self, item: dict, param: str) -> None:
        role = item.get("role")
        role = _ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise InvalidRequest("role must be one of user, assistant, system, developer",
                                 param=f"{param}.role")
        text, images = _content(item.get("content"), f"{param}.content")
        last = self.messages[-1] if self.messages else None
        if role == "assistant" and last is not None and last["role"] == "assistant" and last.get("tool_calls"):
            # Text replayed after the calls is still their turn: the outputs must follow the calls.
            last["content"] = "\n".join(part for part in (last["content"], text) if part)
            if images:
                last.setdefault("images", []).extend(images)
            self._attach_thinking(last)
            return
        message = {"role": role, "content": text}
        if images:
            message["images"] = images
        self._append(message)

    def _function_call(self, item: dict, param: str) -> None:
        name, call_id = item.get("name"), item.get("call_id")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("function_call needs a name", param=f"{param}.name")
        name = self.tools.ollama_name(name, item.get("namespace"))
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
