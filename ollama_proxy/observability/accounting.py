"""Count the tokens an answer carries onto its access record, as it streams by.

Ollama reports the exact counts in its final (``done``) chunk:
``prompt_eval_count`` for the prompt and ``eval_count`` for what it generated.
Until then every chunk with generated text stands for one token (Ollama sends
one a token), so a client that leaves half-way is still charged what it got.
An answer whose final chunk never comes is charged its GPU time and prompt as
the proxy measured and estimated them (``ledger.Hold``): the taps tell its hold
when Ollama's own figures came. Only inference is counted: management streams
(pull, push, create) are progress lines, not tokens.

An answer read whole (``stream: false``) has its first token arrive with the
rest: its time to first token is the time until it arrived, so every generation
has one, streamed or not.

The taps run inside stream generators, after the view has returned, so they
are handed the record itself, never the request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator

from ollama_proxy.ledger import AnswerText, Hold, RequestRecord
from ollama_proxy.lines import LineDecoder
from ollama_proxy.observability.cache_figures import withheld
from ollama_proxy.scheduler.decisions.prefix import chain_of, prompt_tokens, text_tokens
from ollama_proxy.translate.ollama import chunk_text
from ollama_proxy.translate.openai_common import choice_texts

_DONE = b'"done":true'  # Ollama writes compact JSON; inside a string the quotes would be escaped
_GENERATED = ("content", "thinking", "tool_calls")
_FIGURES = ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")  # what a hold learns from
# An OpenAI stream's line with generated text in it: content, reasoning, or a tool call's arguments.
_SSE_GENERATED = re.compile(rb'"(?:content|reasoning_content|reasoning|arguments)"\s*:\s*"[^"]')


def note_tokens(record: RequestRecord | None, prompt: int | None, completion: int | None,
                cached: int | None = None) -> None:
    """Add a finished answer's exact counts to the record (several answers are summed); ``cached``: of ``prompt``,
    those read from Ollama's cache, if the answer said."""
    if record is None:
        return
    if _count(prompt):
        record.prompt_tokens = (record.prompt_tokens or 0) + prompt
    if _count(completion):
        record.counted_tokens = (record.counted_tokens or 0) + completion
    if _count(cached):
        record.cached_tokens = (record.cached_tokens or 0) + cached


def note_cache_estimate(record: RequestRecord | None, cached: int | None) -> None:
    """Add the tokens the scheduler expected an answer's server to read from its cache: the proxy's estimate, kept
    apart from what Ollama says (``cached_tokens``); None: none made."""
    if record is not None and _count(cached):
        record.cached_tokens_estimated = (record.cached_tokens_estimated or 0) + cached


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def note_answer(record: RequestRecord | None, answer: dict, hold: Hold | None = None) -> None:
    """Note the counts of a whole Ollama answer (chat, generate, embed), the model's load time, and its GPU time.

    ``hold``: the slot the answer ran in, charged these figures instead of the proxy's, if Ollama gave them.
    """
    note_tokens(record, answer.get("prompt_eval_count"), answer.get("eval_count"),
                answer.get("prompt_eval_cached_count"))
    load, prefill, total = answer.get("load_duration"), answer.get("prompt_eval_duration"), answer.get("total_duration")
    if record is not None and _nanoseconds(total):
        record.gpu_seconds = (record.gpu_seconds or 0.0) + total / 1e9
        if hold is not None:
            hold.reported = True
            hold.figures = {key: answer.get(key) for key in _FIGURES}
    if record is not None and _nanoseconds(load):
        record.load_seconds = load / 1e9
    if record is not None and _nanoseconds(prefill):
        record.prefill_seconds = (record.prefill_seconds or 0.0) + prefill / 1e9


def _nanoseconds(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def note_arrival(record: RequestRecord | None, generated: bool) -> None:
    """Note that an answer read whole has arrived: if it generated anything, its first token came with it."""
    if record is not None and generated and record.first_token is None:
        record.first_token = time.perf_counter()


def prompt_estimate(path: str, body: dict) -> int:
    """The proxy's estimate of a request's prompt tokens (``scheduler.prefix``'s), charged if Ollama never counts it."""
    if path in ("/api/embed", "/api/embeddings"):
        texts = body.get("input", body.get("prompt"))
        texts = texts if isinstance(texts, list) else [texts]
        return sum(text_tokens(text) for text in texts if isinstance(text, str))
    if not body.get("messages") and not body.get("prompt"):
        return 0  # a request that only loads (or unloads) the model reads no prompt
    return prompt_tokens(chain_of(path, body))


def estimate_answer(record: RequestRecord | None, body: bytes) -> None:
    """Count an answer Ollama gives no counts for (a transcription: ``{"text"}`` or text) by its length."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    text = answer["text"] if isinstance(answer, dict) and isinstance(answer.get("text"), str) else body
    if record is not None and text:
        record.counted_tokens = (record.counted_tokens or 0) + text_tokens(text)
        record.measured = True


def hold_of(upstream) -> Hold | None:
    """The GPU slot an answer holds, told when Ollama's figures come (``ledger.Hold``); None where none is held."""
    return getattr(upstream, "hold", None)


class _StreamCount:
    """One stream's provisional count, replaced by the exact one when it is done."""

    def __init__(self, record: RequestRecord, hold: Hold | None = None):
        self.record = record
        self.hold = hold
        self.seen = 0

    def generated(self, tokens: int = 1) -> None:
        if self.record.first_token is None:
            self.record.first_token = time.perf_counter()
        self.seen += tokens
        self.record.provisional_tokens += tokens

    def done(self, answer: dict) -> None:
        if self.record.first_token is None and answer.get("eval_count"):
            # A short answer can arrive whole in one read: its first token arrived now.
            self.record.first_token = time.perf_counter()
        self.record.provisional_tokens -= self.seen
        self.seen = 0
        note_answer(self.record, answer, self.hold)


def _generated(chunk: dict) -> bool:
    message = chunk.get("message")
    if isinstance(message, dict) and any(message.get(key) for key in _GENERATED):
        return True
    return bool(chunk.get("response") or chunk.get("thinking"))


def tap_chunks(chunks: Iterable[dict], record: RequestRecord | None, choice: int = 0,
               hold: Hold | None = None) -> Iterator[dict]:
    """Yield Ollama chunk dicts unchanged, counting their tokens onto ``record`` (and keeping their text if asked).

    ``choice``: which of n side-by-side answers this stream is, for the text kept; ``hold``: its slot.
    """
    if record is None:
        yield from chunks
        return
    count, answer = _StreamCount(record, hold), record.answer
    for chunk in chunks:
        if chunk.get("done"):
            count.done(chunk)
        elif _generated(chunk):
            count.generated()
        if answer is not None:
            answer.add(chunk_text(chunk), choice)
        yield withheld(chunk) if record.cache_withheld else chunk


def tap_ndjson(pieces: Iterable[bytes], record: RequestRecord | None, hold: Hold | None = None) -> Iterator[bytes]:
    """Yield NDJSON bytes unchanged, counting their tokens onto ``record`` (``hold``: the slot they come from).

    Cheap on the hot path: lines are counted, and only a line holding
    ``"done":true`` is parsed, unless the record keeps the answer's text.
    Pieces may split lines anywhere.
    """
    if record is None:
        yield from pieces
        return
    count = _StreamCount(record, hold)
    decoder = LineDecoder()
    for piece in pieces:
        lines = decoder.decode(piece)
        if lines:
            if record.answer is not None:
                _keep_text(record.answer, lines)
            final = _final_object(lines)
            if final is not None:
                count.done(final)
            else:
                count.generated(len(lines))
        yield piece


def count_after_cut(hold: Hold | None, sent: bytes) -> None:
    """Count the tokens a cut answer generated while Ollama stopped (``sent``: its bytes as they came, framing and
    all), which no client read: a token a line, as a stream's are counted until its end."""
    if hold is None or not sent:
        return
    generated = sum(1 for line in sent.split(b"\n") if line.startswith(b"{") and _DONE not in line
                    and not line.startswith(b'{"error"'))
    if generated:
        hold.record.provisional_tokens += generated


def _keep_text(answer: AnswerText, lines: list[bytes]) -> None:
    for line in lines:
        try:
            answer.add(chunk_text(json.loads(line)))
        except ValueError:
            continue


def _final_object(lines: list[bytes]) -> dict | None:
    """Return the ``done`` object among complete NDJSON lines, if it parses."""
    for line in reversed(lines):
        if _DONE in line:
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def tap_sse(pieces: Iterable[bytes], record: RequestRecord | None) -> Iterator[bytes]:
    """Yield an OpenAI stream's bytes unchanged, noting when the first piece with generated text went by.

    When the record keeps the answer's text, each ``data:`` line is read for its choices' text.
    """
    if record is None:
        yield from pieces
        return
    decoder = LineDecoder() if record.answer is not None else None
    for piece in pieces:
        if record.first_token is None and _SSE_GENERATED.search(piece):
            record.first_token = time.perf_counter()
        if decoder is not None:
            for line in decoder.decode(piece):
                if line.startswith(b"data:"):
                    keep_openai_text(record, line[5:])
        yield piece


def keep_openai_text(record: RequestRecord | None, data: bytes) -> None:
    """Keep the choices' text of an OpenAI answer or stream chunk, when the record keeps the answer's text."""
    if record is None or record.answer is None:
        return
    try:
        answer = json.loads(data)
    except ValueError:
        return  # [DONE], or a line cut short
    for index, text in choice_texts(answer):
        record.answer.add(text, index)


def count_body(body: bytes, record: RequestRecord | None, hold: Hold | None = None) -> None:
    """Note the counts of a whole JSON answer (native ``stream: false``), if it has any, and when it came."""
    if record is None or (b"eval_count" not in body and record.answer is None):
        return
    try:
        answer = json.loads(body)
    except ValueError:
        return
    if isinstance(answer, dict):
        note_arrival(record, bool(answer.get("eval_count")))
        note_answer(record, answer, hold)
        if record.answer is not None:
            record.answer.add(chunk_text(answer))
