"""The prompt cache of one Ollama runner: which cache slot a request takes, and how much it reuses.

It follows runner/ollamarunner/cache.go's InputCache. A runner keeps one cache slot per parallel
request, each holding the tokens it last processed: a prompt, then the tokens generated after it.
A request takes a slot as LoadCacheSlot does:

- one user (``multi_user`` false; Ollama's OLLAMA_MULTIUSER_CACHE unset): findLongestCacheSlot,
  the free slot sharing the longest prefix with the prompt;
- several users: findBestCacheSlot. A free slot whose whole cache begins the prompt (the longest
  common prefix of all slots) is reused; otherwise the least recently used free slot is taken, and
  the longest common prefix, found in any slot (in use or not), is copied into it ("forking").

Only the prompt's tokens after that prefix are processed, and at least one always is, to sample
from. A new runner (a load or a reload) starts with empty slots.

Out of scope: context shifts (ShiftCacheSlot), caches that cannot resume anywhere (recurrent
models' checkpoints), and requests that ask for no caching (cachePrompt false).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


class NoFreeSlot(Exception):
    """Every cache slot is in use (Ollama: "no available cache slots")."""


@dataclass
class CacheSlot:
    tokens: list[str] = field(default_factory=list)
    in_use: bool = False
    last_used: float = -math.inf  # never used: older than any used slot


class PromptCache:
    """The cache slots of one runner."""

    def __init__(self, slots: int, *, multi_user: bool = False) -> None:
        self.slots = [CacheSlot() for _ in range(slots)]
        self.multi_user = multi_user

    def load(self, prompt: Sequence[str], now: float) -> tuple[int, int]:
        """Take a slot for a (non-empty) prompt; return its index and how many of the prompt's tokens it had cached."""
        index, cached = self._best(prompt) if self.multi_user else self._longest(prompt)
        slot = self.slots[index]
        slot.in_use, slot.last_used = True, now
        if cached == len(prompt):
            cached -= 1
        slot.tokens = list(prompt[:cached])
        return index, cached

    def extend(self, index: int, tokens: Sequence[str]) -> None:
        """Note tokens the slot's request has processed since: the rest of its prompt, then what it generates."""
        self.slots[index].tokens += tokens

    def release(self, index: int) -> None:
        """Free the slot when its request ends; it keeps what it processed for the next prompt."""
        self.slots[index].in_use = False

    def held(self) -> list[tuple[int, bool]]:
        """Return, for each slot, how many tokens it holds and whether a request is using it."""
        return [(len(slot.tokens), slot.in_use) for slot in self.slots]

    def _longest(self, prompt: Sequence[str]) -> tuple[int, int]:
        """findLongestCacheSlot: the free slot with the longest common prefix, the first of equals."""
        free = [index for index, slot in enumerate(self.slots) if not slot.in_use]
        if not free:
            raise NoFreeSlot
        index = max(free, key=lambda index: _common_prefix(self.slots[index].tokens, prompt))
        return index, _common_prefix(self.slots[index].tokens, prompt)

    def _best(self, prompt: Sequence[str]) -> tuple[int, int]:
        """findBestCacheSlot: a free slot the prompt continues, else the oldest free one, forked if worth it."""
        common = [_common_prefix(slot.tokens, prompt) for slot in self.slots]
        longest = max(range(len(self.slots)), key=common.__getitem__)
        source = self.slots[longest]
        if common[longest] == len(source.tokens) and not source.in_use:
            return longest, common[longest]
        free = [index for index, slot in enumerate(self.slots) if not slot.in_use]
        if not free:
            raise NoFreeSlot
        return min(free, key=lambda index: self.slots[index].last_used), common[longest]


def _common_prefix(held: Sequence[str], prompt: Sequence[str]) -> int:
    """Count the tokens at the start of both sequences that match."""
    count = 0
    for mine, theirs in zip(held, prompt, strict=False):
        if mine != theirs:
            break
        count += 1
    return count
