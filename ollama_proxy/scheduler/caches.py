"""What each slot of a loaded model holds in its prompt cache, as Ollama chooses slots (pure).

Ollama's runner keeps one cache per slot: the prompt it last read. A request
takes, with several slots, the free slot whose whole cache its prompt
continues; failing that, the least recently used free slot, into which the
longest prefix any slot holds (in use or not) is copied first. With one slot,
the slot itself. Only what the prompt does not share is read (prefilled). The
proxy knows every prompt it sent a server, so it can tell, before sending one,
how much of it that server holds, and what it would overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ollama_proxy.scheduler.prefix import Chain, Link, links_of, prompt_tokens, shared_tokens


@dataclass
class CacheSlot:
    links: dict[int, Link] = field(default_factory=dict)  # the prompt it holds, as kept links by position
    tokens: int = 0
    owner: str = ""  # whose prompt it is (the principal)
    ticket: str | None = None  # the request using it now
    last_used: float = -1.0  # when a request last took it; never: the oldest
    ended: float = -1.0  # when its last request ended


@dataclass(frozen=True)
class Pick:
    slot: int
    shared: int  # prompt tokens read from the cache
    overwritten: CacheSlot | None  # what the slot held, if the request replaces it with another prompt


class PromptCaches:
    """The prompt caches of one model loaded on one server: ``slots`` of them."""

    def __init__(self) -> None:
        self.slots: list[CacheSlot] = []

    def pick(self, chain: Chain, slots: int) -> Pick | None:
        """The slot a request with ``chain`` would take now, and what it reads from cache; None if all are busy."""
        self._grow(slots)
        free = [i for i, slot in enumerate(self.slots) if slot.ticket is None]
        if not free:
            return None
        shared = [shared_tokens(chain, slot.links) for slot in self.slots]
        if len(self.slots) == 1:
            return Pick(0, shared[0], None if shared[0] == self.slots[0].tokens else self.slots[0])
        best = max(range(len(self.slots)), key=lambda i: (shared[i], -i))
        if self.slots[best].ticket is None and shared[best] == self.slots[best].tokens:
            return Pick(best, shared[best], None)
        oldest = min(free, key=lambda i: (self.slots[i].last_used, i))
        slot = self.slots[oldest]
        return Pick(oldest, max(shared), slot if slot.tokens > shared[oldest] else None)

    def take(self, ticket: str, owner: str, chain: Chain, slots: int, now: float) -> int:
        """Count a request in on the slot Ollama gives it; return the prompt tokens it reads from cache."""
        pick = self.pick(chain, slots)
        if pick is None:  # more running than the mirror has slots (adopted work): no slot to tell of
            return 0
        self.slots[pick.slot] = CacheSlot(links_of(chain), prompt_tokens(chain), owner, ticket, now)
        return pick.shared

    def release(self, ticket: str, now: float) -> None:
        for slot in self.slots:
            if slot.ticket == ticket:
                slot.ticket, slot.ended = None, now

    def held(self) -> list[CacheSlot]:
        return [slot for slot in self.slots if slot.tokens]

    def _grow(self, slots: int) -> None:
        while len(self.slots) < slots:
            self.slots.append(CacheSlot())
