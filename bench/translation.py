"""Time, in this process, the CPU each surface spends on one Ollama chunk: bytes in, bytes out.

Native is what the proxy does to an NDJSON stream (``relayed``: pass the
bytes on). Every translated surface first splits the byte stream into lines
and decodes them (timed alone as "split + decode"), then runs its stream
converter and encodes each frame as SSE, as its blueprint does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from ollama_proxy.lines import nonblank_lines
from ollama_proxy.relay.streaming import (
    SSE_DONE,
    encoded_frames,
    ndjson_failure,
    relayed,
    sse_event,
    sse_event_named_by_type,
    sse_named_event,
)
from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter
from ollama_proxy.translate.openai import ChatStreamConverter
from ollama_proxy.translate.responses.stream import ResponsesStreamConverter

THINKING_CHUNKS, TEXT_CHUNKS = 20, 200
_WORDS = (" the", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", ",", " which")


def ollama_stream() -> list[bytes]:
    """Return a realistic /api/chat stream as Ollama sends it: one line per chunk."""
    head = {"model": "qwen3:8b", "created_at": "2025-01-01T12:00:00.123456789Z"}
    chunks = [{**head, "message": {"role": "assistant", "content": "", "thinking": _WORDS[i % 10]},
               "done": False} for i in range(THINKING_CHUNKS)]
    chunks += [{**head, "message": {"role": "assistant", "content": _WORDS[i % 10]}, "done": False}
               for i in range(TEXT_CHUNKS)]
    chunks.append({**head, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                   "total_duration": 4_883_583_458, "load_duration": 1_334_875, "prompt_eval_count": 26,
                   "prompt_eval_duration": 342_546_000, "eval_count": TEXT_CHUNKS,
                   "eval_duration": 4_535_599_000})
    return [json.dumps(chunk, separators=(",", ":")).encode() + b"\n" for chunk in chunks]


def _new_id(prefix: str) -> str:
    return prefix + "0123456789abcdef01234567"


def _ignore(_: Exception) -> None:
    """Take a stream failure (none happens here)."""


def native(raw: list[bytes]) -> Iterable[bytes]:
    return relayed(iter(raw), _ignore, ndjson_failure)


def decode(raw: list[bytes]) -> Iterable[dict]:
    return (json.loads(line) for line in nonblank_lines(iter(raw)))


def openai(raw: list[bytes]) -> Iterable[bytes]:
    converter = ChatStreamConverter("chatcmpl-bench", 1735732800, "qwen3:8b", new_id=_new_id)
    yield from encoded_frames(decode(raw), converter, sse_event, _ignore)
    yield SSE_DONE


def anthropic(raw: list[bytes]) -> Iterable[bytes]:
    converter = MessagesStreamConverter("msg_bench", "qwen3:8b", new_id=_new_id)
    return encoded_frames(decode(raw), converter, sse_named_event, _ignore)


def responses(raw: list[bytes]) -> Iterable[bytes]:
    request = {"model": "qwen3:8b", "input": "Why is the sky blue?", "stream": True}
    converter = ResponsesStreamConverter("resp_bench", 1735732800, "qwen3:8b", new_id=_new_id, request=request)
    return encoded_frames(decode(raw), converter, sse_event_named_by_type, _ignore)


SURFACES: dict[str, Callable[[list[bytes]], Iterable]] = {
    "native (relay)": native, "split + decode": decode, "OpenAI chat": openai, "Anthropic": anthropic,
    "Responses": responses,
}


def cost_per_chunk(surface: Callable[[list[bytes]], Iterable], raw: list[bytes], seconds: float) -> float:
    """Return the best µs per chunk over five rounds of about ``seconds`` / 5 each."""
    rounds = []
    for _ in range(5):
        started, streams = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 5 and streams < 100_000:
            for _ in surface(raw):
                pass
            streams += 1
        rounds.append((time.perf_counter() - started) / (streams * len(raw)))
    return min(rounds) * 1e6


def measure(seconds: float = 5.0) -> dict[str, float]:
    """Return µs per chunk for every surface."""
    raw = ollama_stream()
    return {name: cost_per_chunk(surface, raw, seconds / len(SURFACES)) for name, surface in SURFACES.items()}
