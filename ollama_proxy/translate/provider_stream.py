"""Turn an OpenAI-compatible provider's chat stream into Ollama's chat or generate chunks.

``ProviderStream.process(chunk, now)`` takes one decoded ``data:`` object of
the provider's SSE stream and returns the Ollama chunks it becomes;
``finish(now)`` returns the final ``done`` chunk once the provider says
``[DONE]`` (or ends after a ``finish_reason``). Clock values come in as
arguments (seconds since the epoch): the converter reads no clock itself.

- Text (``content``) and reasoning (``reasoning_content`` or ``reasoning``) go
  out as ``content`` and ``thinking`` the moment they arrive, as Ollama streams
  them.
- Tool calls arrive as argument fragments spread over chunks, keyed by
  ``index``; Ollama sends each call whole, with arguments as an object, so they
  are gathered and sent together in a chunk just before the final one.
  Arguments that are not a JSON object are the provider's error.
- A call the token limit cut half-way (``finish_reason`` ``length`` while its
  arguments are not a whole JSON object yet) is left out: running a tool on
  arguments the model never finished would be worse than not running it. The
  answer ends as Ollama ends a cut one: what was complete (text, earlier
  calls), then ``done_reason: "length"``.
- The final chunk has ``done_reason`` (``stop`` for ``stop`` and
  ``tool_calls``, ``length`` for ``length``, any other reason as the provider
  names it), ``prompt_eval_count`` and ``eval_count`` from the provider's
  usage, and durations in nanoseconds measured by the proxy
  (``prompt_eval_duration``: until the first token).
- Only the first choice is read: Ollama gives one answer per request.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ollama_proxy.errors import UpstreamError

# OpenAI's finish reasons in Ollama's words: Ollama says "stop" when the model called tools.
_DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "function_call": "stop"}
NS = 1_000_000_000


def created_at(now: float) -> str:
    """Format an epoch time as Ollama's ``created_at`` (RFC 3339, UTC, microseconds)."""
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ProviderStream:
    """Convert one provider stream; ``generate`` picks ``/api/generate``'s shape."""

    def __init__(self, model: str, started: float, *, generate: bool = False):
        self.model = model
        self.generate = generate
        self.started = started
        self.first_token: float | None = None
        self.usage: dict | None = None
        self.finish_reason: str | None = None
        self.finished = False
        self._calls: dict[int, dict] = {}

    def process(self, chunk: dict, now: float) -> list[dict]:
        """Return the Ollama chunks for one provider chunk (often one, maybe none)."""
        if "error" in chunk:
            raise UpstreamError(f"the provider failed mid-answer: {error_message(chunk)}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        frames = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # Ollama has one answer per request; n is never asked for
            frames += self._delta(choice.get("delta") or {}, now)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return frames

    def finish(self, now: float) -> list[dict]:
        """Return the tool calls gathered and the final ``done`` chunk."""
        if self.finished:
            return []
        self.finished = True
        calls = self._whole_calls()
        frames = [self._frame(now, tool_calls=calls)] if calls else []
        return frames + [self._frame(now, done=True, **self._metrics(now))]

    def close(self, now: float) -> list[dict]:
        """Return what is owed when the provider's stream ends without ``[DONE]``."""
        if self.finished:
            return []
        if self.finish_reason is None:
            raise UpstreamError("the provider closed the stream before the answer was complete")
        return self.finish(now)

    def _delta(self, delta: dict, now: float) -> list[dict]:
        text = delta.get("content") or ""
        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
        for fragment in delta.get("tool_calls") or []:
            self._gather(fragment)
        if not text and not thinking:
            return []
        if self.first_token is None:
            self.first_token = now
        return [self._frame(now, text=text, thinking=thinking)]

    def _gather(self, fragment: dict) -> None:
        call = self._calls.setdefault(fragment.get("index", len(self._calls)), {"name": "", "arguments": ""})
        if fragment.get("id"):
            call["id"] = fragment["id"]
        function = fragment.get("function") or {}
        call["name"] += function.get("name") or ""
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments)
        call["arguments"] += arguments or ""

    def _whole_calls(self) -> list[dict]:
        indexes = sorted(self._calls)
        if self.finish_reason == "length" and indexes and not _is_object(self._calls[indexes[-1]]["arguments"]):
            # The token limit cut the last call while its arguments were being written (its name may
            # be cut too). Half an object cannot be completed honestly, and a client would run the tool
            # on arguments the model never gave: the call is dropped, the calls before it were whole,
            # and done_reason "length" tells the client the answer was cut, as Ollama does.
            indexes = indexes[:-1]
        calls = []
        for position, index in enumerate(indexes):
            call = self._calls[index]
            whole = {"function": {"index": position, "name": call["name"],
                                  "arguments": _arguments(call["name"], call["arguments"])}}
            if call.get("id"):
                whole = {"id": call["id"], **whole}
            calls.append(whole)
        return calls

    def _frame(self, now: float, *, text: str = "", thinking: str = "", tool_calls: list | None = None,
               done: bool = False, **tail) -> dict:
        if self.generate:
            frame = {"model": self.model, "created_at": created_at(now), "response": text}
            if thinking:
                frame["thinking"] = thinking
        else:
            message = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            frame = {"model": self.model, "created_at": created_at(now), "message": message}
        return {**frame, "done": done, **tail}

    def _metrics(self, now: float) -> dict:
        first = self.first_token if self.first_token is not None else now
        metrics = {"done_reason": _DONE_REASONS.get(self.finish_reason, self.finish_reason or "stop"),
                   "total_duration": _ns(now - self.started), "load_duration": 0}
        usage = self.usage or {}
        if usage.get("prompt_tokens") is not None:
            metrics["prompt_eval_count"] = usage["prompt_tokens"]
        metrics["prompt_eval_duration"] = _ns(first - self.started)
        if usage.get("completion_tokens") is not None:
            metrics["eval_count"] = usage["completion_tokens"]
        metrics["eval_duration"] = _ns(now - first)
        return metrics


def _is_object(text: str) -> bool:
    """Tell whether assembled arguments are a whole JSON object."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _arguments(name: str, text: str) -> dict:
    """Parse a call's assembled arguments; Ollama's clients expect an object."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise UpstreamError(f"the provider sent arguments for tool {name!r} that are not valid JSON: "
                            f"{text[:200]!r}") from None
    if not isinstance(value, dict):
        raise UpstreamError(f"the provider sent arguments for tool {name!r} that are not a JSON object")
    return value


def _ns(seconds: float) -> int:
    return max(0, round(seconds * NS))


def error_message(body: object) -> str:
    """Return the message of an OpenAI-style error body (``{"error": {"message"}}`` and kin)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "msg", "detail"):
                if isinstance(error.get(key), str):
                    return error[key]
        if isinstance(error, str):
            return error
    return json.dumps(body)[:500]


def completion_as_chunk(completion: dict) -> dict:
    """Turn a whole chat completion into one stream chunk (for providers that ignore ``stream``)."""
    choice = (completion.get("choices") or [{}])[0]
    delta = dict(choice.get("message") or {})
    if delta.get("tool_calls"):
        delta["tool_calls"] = [{**call, "index": n} for n, call in enumerate(delta["tool_calls"])]
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}],
            "usage": completion.get("usage")}
