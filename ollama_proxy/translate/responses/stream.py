"""Turn Ollama ``/api/chat`` chunks into Responses API stream events."""

from __future__ import annotations

from ollama_proxy.translate.responses._common import (
    NewId,
    function_call_item,
    message_item,
    output_logprobs,
    output_text,
    reasoning_item,
    response_object,
    token_usage,
)
from ollama_proxy.translate.responses.tools import ToolSet


class _OpenItem:
    """The reasoning or message item being streamed, and its text so far."""

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind, self.id, self.index = kind, item_id, index
        self.text = ""
        self.logprobs: list[dict] = []

    def final(self, status: str) -> dict:
        """Return the item as it stands, with ``status`` if it is a message."""
        if self.kind == "reasoning":
            return reasoning_item(self.id, self.text)
        return message_item(self.id, self.text, self.logprobs, status)


class ResponsesStreamConverter:
    """Turn Ollama /api/chat chunks into Responses API stream events.

    Each output item is opened, filled by deltas and closed before the next one
    starts, in the order Ollama sends thinking, text and tool calls.
    """

    def __init__(self, response_id: str, created_at: int, model: str, *, new_id: NewId,
                 request: dict) -> None:
        self._response_id, self._created_at, self._model = response_id, created_at, model
        self._new_id, self._request = new_id, request
        self._tools = ToolSet.of(request)  # to name calls as the request declared them
        self._sequence = 0
        self._started = self.finished = False
        self._output: list[dict] = []  # closed items, by output_index
        self._open: _OpenItem | None = None

    def process(self, ollama_chunk: dict) -> list[dict]:
        """Return the events one Ollama chunk adds to the stream."""
        if self.finished:
            return []
        if ollama_chunk.get("error") is not None:
            return self.error(_error_text(ollama_chunk["error"]))
        events = self._start()
        message = ollama_chunk.get("message") or {}
        if message.get("thinking"):
            events += self._delta("reasoning", message["thinking"], [])
        if message.get("content"):
            events += self._delta("message", message["content"], output_logprobs(ollama_chunk))
        for call in message.get("tool_calls") or []:
            events += self._function_call(call)
        if ollama_chunk.get("done"):
            events += self._finish(ollama_chunk)
        return events

    def error(self, message: str) -> list[dict]:
        """Return the events that end the stream after an upstream failure."""
        if self.finished:
            return []
        events = self._start()
        output = self._output + ([self._open.final("incomplete")] if self._open else [])
        self.finished = True
        response = self._snapshot("failed", output, error={"code": "server_error", "message": message})
        return events + [self._event("response.failed", response=response)]

    fail = error

    def close(self) -> list[dict]:
        """Return what is owed when the upstream ends: a failure if it never said done."""
        return self.error("the upstream closed the stream before the response was complete")

    def _event(self, kind: str, **fields: object) -> dict:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(self, status: str, output: list, **fields: object) -> dict:
        return response_object(self._request, self._response_id, self._created_at, self._model,
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
                            part=output_text("", []))]

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
                                  part=output_text(item.text, item.logprobs))]
        final = item.final(status)
        self._output.append(final)
        return events + [self._event("response.output_item.done", output_index=item.index, item=final)]

    def _function_call(self, call: dict) -> list[dict]:
        events = self._close("completed")
        item = function_call_item(self._new_id("fc_"), call, self._new_id, self._tools)
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
        self.finished = True
        status = "incomplete" if truncated else "completed"
        response = self._snapshot(status, list(self._output), usage=token_usage(ollama_chunk))
        return events + [self._event(f"response.{status}", response=response)]


def _error_text(error: object) -> str:
    """Return the message of an Ollama ``error`` value (a string, or an object)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return error if isinstance(error, str) else str(error)
