"""Prompts read side by side on one runner: what its other slots read while one prompt was read.

llama-server reads the waiting prompts of all its slots in the same batches (``n_batch`` tokens at a
time, slot by slot), so a short prompt that comes while another slot reads a long one is done only when
the batches they share are: its ``prompt_eval_duration`` covers the other's tokens too. On the real engine
a 252-token turn took 7.8 s beside a 2,864-token first turn, where alone it takes 1.9 s. Where Ollama
says only the time (every release up to 0.33), what a duration says was read again is counted less what
the other slots are expected to have read within it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

READS_KEPT = 32  # a runner's latest reads remembered: more than ever overlap one


@dataclass(frozen=True)
class Read:
    """A prompt a runner began to read: its ticket, when, and Ollama's tokens it was expected to read again."""

    ticket: str
    started: float
    tokens: int


def read_beside(reads: Iterable[Read], ticket: str, started: float, seconds: float, rate: float) -> float:
    """Tokens the other reads are expected to have read while ``ticket`` read its prompt (from ``started``, for
    ``seconds``): each over the time it takes alone at ``rate`` tokens a second, from its own start."""
    beside = 0.0
    for read in reads:
        if read.ticket != ticket:
            overlap = min(started + seconds, read.started + read.tokens / rate) - max(started, read.started)
            beside += max(0.0, overlap) * rate
    return beside


def reading_left(reads: Iterable[tuple[int, float, int]], now: float, rate: float) -> dict[int, float]:
    """The tokens each slot has still to read at ``now``, of the prompts ``reads`` (slot, started, tokens) of
    the requests running: read at ``rate`` tokens a second, the lowest slot first, as llama-server fills a batch."""
    left: dict[int, float] = {}
    clock = now
    for slot, started, tokens in sorted(reads, key=lambda read: read[1]):
        started = min(started, now)
        _read(left, (started - clock) * rate)  # nothing before the first read
        clock = started
        left[slot] = left.get(slot, 0.0) + tokens
    _read(left, (now - clock) * rate)
    return {slot: tokens for slot, tokens in left.items() if tokens > 0}


def _read(left: dict[int, float], tokens: float) -> None:
    """Read ``tokens`` off what the slots have left, the lowest slot first."""
    for slot in sorted(left):
        if tokens <= 0:
            return
        taken = min(left[slot], tokens)
        left[slot] -= taken
        tokens -= taken
