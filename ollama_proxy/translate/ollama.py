"""Read Ollama's answers: fold a stream into the one answer Ollama gives when ``stream`` is false; its counts.

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
        final["message"] = {**(final["message"] or {}), **_folded([c.get("message") or {} for c in chunks], "content")}
    else:
        final.update(_folded(chunks, "response"))
    logprobs = [entry for c in chunks for entry in c.get("logprobs") or []]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _folded(parts: list[dict], text_key: str) -> dict:
    """Join the text and thinking of a stream's parts and gather their tool calls."""
    folded = {text_key: "".join(p.get(text_key) or "" for p in parts)}
    thinking = "".join(p.get("thinking") or "" for p in parts)
    if thinking:
        folded["thinking"] = thinking
    calls = [call for p in parts for call in p.get("tool_calls") or []]
    if calls:
        folded["tool_calls"] = calls
    return folded


def chunk_text(chunk: object) -> str:
    """Return the answer text an Ollama chunk (or whole answer) carries: chat's content, generate's response."""
    if not isinstance(chunk, dict):
        return ""
    message = chunk.get("message")
    text = message.get("content") if isinstance(message, dict) else chunk.get("response")
    return text if isinstance(text, str) else ""


def cached_prompt_tokens(ollama_resp: dict) -> int | None:
    """The prompt tokens Ollama read from its cache, as it said (``prompt_eval_cached_count``); None if unsaid.

    No Ollama release up to 0.33 says it (only an unmerged branch adds the field): their ``prompt_eval_count``
    counts every prompt token, cached or not, and nothing tells the cached apart. None is not 0: a client must
    not read "none cached" where nobody measured, so the figure is Ollama's or nothing, never the proxy's guess.
    """
    cached = ollama_resp.get("prompt_eval_cached_count")
    return cached if isinstance(cached, int) and not isinstance(cached, bool) and cached >= 0 else None
