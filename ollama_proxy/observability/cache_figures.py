"""Withhold what an Ollama answer says it read from the prompt cache, where that may be another tenant's.

``prompt_eval_cached_count`` (from which the OpenAI ``cached_tokens`` and the Anthropic
``cache_read_input_tokens`` are made) is dropped from the answer the client sees; the access log,
metrics and the scheduler keep it (they read the answer first). Server-Timing's ``prefill`` is left
out by the ledger (``RequestRecord.cache_withheld``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from ollama_proxy.lines import LineDecoder

WITHHELD = ("prompt_eval_cached_count",)
_MARK = b"prompt_eval_cached_count"  # a line without it has nothing to withhold, and is passed on as it came


def withheld(chunk: dict) -> dict:
    """``chunk`` without its cache figures."""
    if not any(name in chunk for name in WITHHELD):
        return chunk
    return {name: value for name, value in chunk.items() if name not in WITHHELD}


def withheld_line(line: bytes) -> bytes:
    """One JSON line (or a whole JSON answer) without its cache figures; anything else as it came."""
    if _MARK not in line:
        return line
    try:
        chunk = json.loads(line)
    except ValueError:
        return line
    if not isinstance(chunk, dict):
        return line
    end = b"\n" if line.endswith(b"\n") else b""
    return json.dumps(withheld(chunk), separators=(",", ":"), ensure_ascii=False).encode() + end


def withheld_ndjson(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """An NDJSON stream without cache figures: whole lines, as they complete (pieces may split them anywhere)."""
    decoder = LineDecoder()
    for piece in pieces:
        lines = decoder.decode(piece)
        if lines:
            yield b"".join(withheld_line(line + b"\n") for line in lines)
    for rest in decoder.flush():
        yield withheld_line(rest)
