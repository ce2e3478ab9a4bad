"""Translate Ollama ``/api/chat`` responses into OpenAI chat completions.

``to_openai_chat_completion`` maps a whole response; ``ChatStreamConverter``
maps a stream chunk by chunk and returns the OpenAI chunk objects to send (the
SSE framing and the final ``[DONE]`` are the streaming layer's job). The
``model`` reported is the name the client asked for, not the upstream's.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ollama_proxy.translate.openai_common import StreamLifecycle, finish_reason, to_openai_usage, usage_frame

NewId = Callable[[str], str]

_CHUNK = "chat.completion.chunk"


def to_openai_chat_completion(ollama_resp: dict, *, completion_id: str, created: int, model: str,
                              new_id: NewId, exclude_reasoning: bool = False,
                              choice_index: int = 0) -> dict:
    """Translate a non-streamed Ollama chat response into an OpenAI chat.completion."""
    message = ollama_resp.get("message") or {}
    tool_calls = to_openai_tool_calls(message.get("tool_calls"), new_id)
    choice = {
        "index": choice_index,
        "message": _assistant_message(message, tool_calls, exclude_reasoning),
        "logprobs": to_openai_logprobs(ollama_resp.get("logprobs")),
        "finish_reason": finish_reason(ollama_resp.get("done_reason"), tool_calls=bool(tool_calls)),
    }
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": to_openai_usage(ollama_resp)}


def _assistant_message(message: dict, tool_calls: list[dict], exclude_reasoning: bool) -> dict:
    content = message.get("content") or ""
    # OpenAI sends null content, not "", when the turn is only tool calls.
    out = {"role": "assistant", "content": content or (None if tool_calls else "")}
    out.update(_reasoning(message.get("thinking"), exclude_reasoning))
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def _reasoning(thinking: object, exclude: bool) -> dict:
    # Sent under both names: DeepSeek-style clients read reasoning_content,
    # OpenRouter-style clients (and Ollama's own layer) read reasoning.
    if exclude or not isinstance(thinking, str) or not thinking:
        return {}
    return {"reasoning_content": thinking, "reasoning": thinking}


def to_openai_tool_calls(calls: list[dict] | None, new_id: NewId) -> list[dict]:
    """Translate Ollama tool calls into OpenAI ones, each with a unique id."""
    return [to_openai_tool_call(call, new_id) for call in calls or []]


def to_openai_tool_call(call: dict, new_id: NewId) -> dict:
    """Translate one Ollama tool call; Ollama's id is kept when it gave one."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {}, ensure_ascii=False, separators=(",", ":"))
    return {"id": call.get("id") or new_id("call_"), "type": "function",
            "function": {"name": function.get("name", ""), "arguments": arguments}}


def to_openai_logprobs(entries: list[dict] | None) -> dict | None:
    """Translate Ollama's logprobs into OpenAI's ``choices[].logprobs`` (None if absent)."""
    if not entries:
        return None
    return {"content": [{**_token_logprob(entry),
                         "top_logprobs": [_token_logprob(top) for top in entry.get("top_logprobs") or []]}
                        for entry in entries]}


def _token_logprob(entry: dict) -> dict:
    return {"token": entry.get("token", ""), "logprob": entry.get("logprob"), "bytes": entry.get("bytes")}


class ChatStreamConverter(StreamLifecycle):
    """Turn Ollama /api/chat stream chunks into OpenAI chat.completion.chunk objects.

    The stream's life (``process``, ``close``, ``fail``) is ``StreamLifecycle``'s. ``usage``
    holds the last usage seen, so a gateway serving n > 1 can drop each
    converter's usage chunk (``choices == []``) and send one summed
    ``usage_frame`` instead.
    """

    object_name = _CHUNK

    def __init__(self, completion_id: str, created: int, model: str, *, new_id: NewId,
                 include_usage: bool = False, exclude_reasoning: bool = False, choice_index: int = 0):
        super().__init__()
        self.completion_id = completion_id
        self.created = created
        self.model = model
        self.new_id = new_id
        self.include_usage = include_usage
        self.exclude_reasoning = exclude_reasoning
        self.choice_index = choice_index
        self._tool_calls = 0

    def _content(self, ollama_chunk: dict) -> list[dict]:
        delta = self._delta(ollama_chunk.get("message") or {})
        if not delta:
            return []
        frame = self._frame(delta, logprobs=to_openai_logprobs(ollama_chunk.get("logprobs")))
        return [frame] if self._started else self._start() + [frame]

    def _delta(self, message: dict) -> dict:
        delta = {}
        if message.get("content"):
            delta["content"] = message["content"]
        delta.update(_reasoning(message.get("thinking"), self.exclude_reasoning))
        if message.get("tool_calls"):
            delta["tool_calls"] = [self._tool_call_delta(call) for call in message["tool_calls"]]
        return delta

    def _tool_call_delta(self, call: dict) -> dict:
        # Counted across the stream: Ollama's own layer sends index 0 for every
        # call, and clients then merge parallel calls into one.
        index, self._tool_calls = self._tool_calls, self._tool_calls + 1
        return {"index": index, **to_openai_tool_call(call, self.new_id)}

    def _start_frames(self) -> list[dict]:
        return [self._frame({"role": "assistant", "content": ""})]

    def _finish(self, done_chunk: dict) -> list[dict]:
        self.finished = True
        self.usage = to_openai_usage(done_chunk)
        reason = finish_reason(done_chunk.get("done_reason"), tool_calls=self._tool_calls > 0)
        frames = [self._frame({}, reason=reason)]
        if self.include_usage:
            frames.append(usage_frame(self.completion_id, self.created, self.model, self.usage, _CHUNK))
        return frames

    def _frame(self, delta: dict, *, reason: str | None = None, logprobs: dict | None = None) -> dict:
        frame = {"id": self.completion_id, "object": _CHUNK, "created": self.created, "model": self.model,
                 "choices": [{"index": self.choice_index, "delta": delta, "logprobs": logprobs,
                              "finish_reason": reason}]}
        if self.include_usage:
            frame["usage"] = None  # OpenAI's convention: null on every chunk but the last
        return frame
