"""Turn Ollama chat chunks into Anthropic stream events, as ``(event, data)`` pairs.

The SSE framing is done elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

from ollama_proxy.translate.anthropic._common import NewId, stop_reason, token_usage, tool_input

Event = tuple[str, dict]


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
        partial = json.dumps(tool_input(function.get("arguments")), ensure_ascii=False)
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
        delta = {"stop_reason": stop_reason(chunk, self._tool_used), "stop_sequence": None}
        return events + [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": token_usage(chunk)}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def _block_event(self, name: str, **fields: Any) -> Event:
        return name, {"type": name, "index": self._index, **fields}
