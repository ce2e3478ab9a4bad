"""What each slot of a loaded model holds in its prompt cache, as Ollama chooses slots (pure).

Ollama's runner keeps one cache per slot: the prompt it last read. A request
takes the free slot that shares the longest prefix with its prompt, the first
of equals (Ollama's default), a used slot before an empty one. A server run with ``OLLAMA_MULTIUSER_CACHE``
(``multiuser``) gives it, with several slots, the free slot whose whole cache
its prompt continues; failing that, the least recently used free slot, into
which the longest prefix any slot holds (in use or not) is copied first. Only
what the prompt does not share is read (prefilled). The
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
    owner: tuple = ()  # whose prompt it is (``Share.leaf``: the principal, or an end user in it)
    ticket: str | None = None  # the request using it now
    last_used: float = -1.0  # when a request last took it; never: the oldest
    ended: float = -1.0  # when its last request ended
    came_back: float | None = None  # seconds its conversation last took to ask again after a turn ended


@dataclass(frozen=True)
class Pick:
    slot: int
    shared: int  # prompt tokens read from the cache
    overwritten: CacheSlot | None  # what the slot held, if the request replaces it with another prompt


class PromptCaches:
    """The prompt caches of one model loaded on one server: ``slots`` of them."""

    def __init__(self) -> None:
        self.slots: list[CacheSlot] = []

    def pick(self, chain: Chain, slots: int, multiuser: bool = False) -> Pick | None:
        """The slot a request with ``chain`` would take now, and what it reads from cache; None if all are busy."""
        self._grow(slots)
        free = [i for i, slot in enumerate(self.slots) if slot.ticket is None]
        if not free:
            return None
        shared = [shared_tokens(chain, slot.links) for slot in self.slots]
        if not multiuser or len(self.slots) == 1:
            # Every prompt shares the chat template's first tokens with a slot that holds one: a used slot
            # goes before an empty one, as it would in Ollama.
            longest = max(free, key=lambda i: (shared[i], self.slots[i].tokens > 0, -i))
            slot = self.slots[longest]
            return Pick(longest, shared[longest], slot if slot.tokens > shared[longest] else None)
        best = max(range(len(self.slots)), key=lambda i: (shared[i], -i))
        if self.slots[best].ticket is None and shared[best] == self.slots[best].tokens:
            return Pick(best, shared[best], None)
        oldest = min(free, key=lambda i: (self.slots[i].last_used, i))
        slot = self.slots[oldest]
        return Pick(oldest, max(shared), slot if slot.tokens > shared[oldest] else None)

    def take(self, ticket: str, owner: tuple, chain: Chain, slots: int, now: float, asked: float | None = None,
             multiuser: bool = False) -> int:
        """Count a request in on the slot Ollama gives it; return the prompt tokens it reads from cache.

        ``asked``: when the request came; if it continues its own conversation, the slot learns how long
        that conversation took to come back.
        """
        pick = self.pick(chain, slots, multiuser)
        if pick is None:  # more running than the mirror has slots (adopted work): no slot to tell of
            return 0
        before = self.slots[pick.slot]
        came_back = None
        if (before.owner == owner and before.ended >= 0 and before.tokens
                and shared_tokens(chain, before.links) == before.tokens):
            came_back = max(0.0, (now if asked is None else asked) - before.ended)
        self.slots[pick.slot] = CacheSlot(links_of(chain), prompt_tokens(chain), owner, ticket, now,
                                          came_back=came_back)
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
