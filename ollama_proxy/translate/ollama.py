"""Fold an Ollama stream into the one answer Ollama gives when ``stream`` is false.

The proxy asks Ollama for a stream even when its client wants one answer:
a stream can be closed the moment the client leaves (so the GPU stops), and
its silences are bounded chunk by chunk. Ollama folds its own stream the same
way to answer ``stream: false``.
"""

from __future__ import annotations

from ollama_proxy.errors import UpstreamError


def fold_chunks(chunks: list[dict]) -> dict:
    """Return the whole answer that a chat or generate stream adds up to."""
    if not chunks:
        raise UpstreamError("Ollama ended the answer before it began")
    final = dict(chunks[-1])
    if "error" in final:
        raise UpstreamError(str(final["error"]))
    if not final.get("done"):
        raise UpstreamError("Ollama ended the answer before it was done")
    if "message" in final:
        final["message"] = _fold_message([c.get("message") or {} for c in chunks])
    else:
        final["response"] = "".join(c.get("response") or "" for c in chunks)
        thinking = "".join(c.get("thinking") or "" for c in chunks)
        if thinking:
            final["thinking"] = thinking
    logprobs = [entry for c in chunks for entry in c.get("logprobs") or []]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _fold_message(messages: list[dict]) -> dict:
    message = dict(messages[-1])
    message["content"] = "".join(m.get("content") or "" for m in messages)
    thinking = "".join(m.get("thinking") or "" for m in messages)
    if thinking:
        message["thinking"] = thinking
    calls = [call for m in messages for call in m.get("tool_calls") or []]
    if calls:
        message["tool_calls"] = calls
    return message
