"""The prompt cache of one Ollama runner as llama.cpp's llama-server keeps it (Ollama 0.30 and later).

Ollama starts one ``llama-server`` per loaded model with ``-np NUM_PARALLEL`` and sends every request
with ``cache_prompt: true`` (llm/llama_server.go), leaving the rest at llama-server's defaults. This
follows tools/server/server-context.cpp (``get_available_slot``, the idle-slot saving after a launch)
and server-task.cpp (``server_prompt_cache``) of the llama.cpp that llama-cpp-python 0.3.36 vendors:

- a slot holds the tokens it last processed: a prompt, then what it generated;
- a request takes the idle slot whose tokens share the largest part of its prompt, if that part is
  over ``similarity`` (``--slot-prompt-similarity``, 0.1); the first of equals. Otherwise the least
  recently used idle slot (a slot never used first; the last of equals);
- a slot taken by the least recently used rule, or by similarity while keeping under half of what it
  held, is saved to the RAM prompt cache first; then the cached prompt that shares more with the
  request, both as a part of the request and of itself (and at least a quarter of itself), is loaded
  into the slot and leaves the cache;
- once a request has a slot, every idle slot is saved to the RAM cache too (``--cache-idle-slots``);
- the RAM cache holds whole prompts, oldest first: saving one drops the entries it contains, one the
  cache already contains is not saved again, and the oldest go first when it is full
  (``--cache-ram``, 8 GiB by default: ``ram_tokens`` here);
- only the prompt's tokens after what its slot holds are processed, and at least one always is.

Out of scope: context shifts, context checkpoints (recurrent and sliding-window models), child
tasks (``n`` > 1), and ``--cache-reuse``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SIMILARITY = 0.1  # --slot-prompt-similarity
KEEP_WHEN_SIMILAR = 0.5  # a slot taken by similarity is saved first if the request keeps less of it than this
LOAD_AT_LEAST = 0.25  # a cached prompt is loaded only if the request keeps this much of it


class NoFreeSlot(Exception):
    """Every slot is in use (Ollama sends no more requests than slots: its semaphore holds them)."""


@dataclass
class CacheSlot:
    tokens: list[str] = field(default_factory=list)
    in_use: bool = False
    last_used: float = -1.0  # when its last request ended; -1: never used


class PromptCache:
    """The slots of one runner and its RAM prompt cache."""

    def __init__(self, slots: int, *, ram_tokens: int | None = None, similarity: float = SIMILARITY) -> None:
        """``ram_tokens``: the RAM cache's size in tokens (None: no limit; 0: no RAM cache)."""
        self.slots = [CacheSlot() for _ in range(slots)]
        self.ram: list[list[str]] = []  # saved prompts, oldest first
        self.ram_tokens = ram_tokens
        self.similarity = similarity

    def load(self, prompt: Sequence[str], now: float) -> tuple[int, int]:
        """Take a slot for a (non-empty) prompt; return its index and how many of the prompt's tokens it had cached."""
        index, save = self._pick(prompt)
        slot = self.slots[index]
        if save and self.ram_tokens != 0:
            self._save(slot.tokens)
            self._restore(slot, prompt)
        slot.in_use = True
        cached = min(_common_prefix(slot.tokens, prompt), len(prompt) - 1)
        slot.tokens = list(prompt[:cached])
        if self.ram_tokens != 0:
            for idle in self.slots:
                if not idle.in_use:
                    self._save(idle.tokens)
        return index, cached

    def extend(self, index: int, tokens: Sequence[str]) -> None:
        """Note tokens the slot's request has processed since: the rest of its prompt, then what it generates."""
        self.slots[index].tokens += tokens

    def release(self, index: int, now: float) -> None:
        """Free the slot when its request ends; it keeps what it processed for the next prompt."""
        slot = self.slots[index]
        slot.in_use, slot.last_used = False, now

    def held(self) -> list[tuple[int, bool]]:
        """Return, for each slot, how many tokens it holds and whether a request is using it."""
        return [(len(slot.tokens), slot.in_use) for slot in self.slots]

    def _pick(self, prompt: Sequence[str]) -> tuple[int, bool]:
        """The slot llama-server gives ``prompt``, and whether it saves that slot to the RAM cache first."""
        best, best_similarity = None, 0.0
        for index, slot in enumerate(self.slots):
            if slot.in_use or not slot.tokens or not self.similarity:
                continue
            similarity = _common_prefix(slot.tokens, prompt) / len(prompt)
            if similarity > best_similarity and similarity > self.similarity:
                best, best_similarity = index, similarity
        if best is not None:
            kept = best_similarity * len(prompt) / len(self.slots[best].tokens)
            return best, kept < KEEP_WHEN_SIMILAR
        oldest = None
        for index, slot in enumerate(self.slots):
            if not slot.in_use and (oldest is None or slot.last_used <= self.slots[oldest].last_used):
                oldest = index
        if oldest is None:
            raise NoFreeSlot
        return oldest, True

    def _save(self, tokens: list[str]) -> None:
        """Save a slot's tokens to the RAM cache (``server_prompt_cache::alloc``), unless it holds them already."""
        if not tokens or any(_common_prefix(saved, tokens) == len(tokens) for saved in self.ram):
            return
        if self.ram_tokens is not None and len(tokens) > self.ram_tokens:
            return
        self.ram = [saved for saved in self.ram if _common_prefix(saved, tokens) != len(saved)]
        while self.ram and self.ram_tokens is not None and self._ram_size() + len(tokens) > self.ram_tokens:
            self.ram.pop(0)
        self.ram.append(list(tokens))

    def _restore(self, slot: CacheSlot, prompt: Sequence[str]) -> None:
        """Load into ``slot`` the saved prompt that serves ``prompt`` better than it does (``prompt_cache::load``)."""
        shared = _common_prefix(slot.tokens, prompt)
        best_keep = shared / len(slot.tokens) if slot.tokens else -1.0
        best_similarity = shared / len(prompt)
        best = None
        for index, saved in enumerate(self.ram):
            common = _common_prefix(saved, prompt)
            keep, similarity = common / len(saved), common / len(prompt)
            if keep >= LOAD_AT_LEAST and best_keep < keep and best_similarity < similarity:
                best, best_keep, best_similarity = index, keep, similarity
        if best is not None:
            slot.tokens = self.ram.pop(best)

    def _ram_size(self) -> int:
        return sum(len(saved) for saved in self.ram)


def _common_prefix(held: Sequence[str], prompt: Sequence[str]) -> int:
    """Count the tokens at the start of both sequences that match."""
    count = 0
    for mine, theirs in zip(held, prompt, strict=False):
        if mine != theirs:
            break
        count += 1
    return count
