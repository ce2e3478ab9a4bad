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
    """The prompt caches of one model loaded on one server: ``slots`` of them.

    Only the slots that hold a prompt are compared with a request's: an empty slot shares nothing,
    and goes after every used one (the lowest empty one first), so a server of many slots costs a
    pick no more than the prompts it holds.
    """

    def __init__(self) -> None:
        self.slots: list[CacheSlot] = []
        self._used: dict[int, None] = {}  # the slots that hold a prompt
        self._tickets: dict[str, int] = {}  # request -> the slot it runs on

    def pick(self, chain: Chain, slots: int, multiuser: bool = False) -> Pick | None:
        """The slot a request with ``chain`` would take now, and what it reads from cache; None if all are busy."""
        self._grow(slots)
        if len(self._tickets) >= len(self.slots):
            return None
        used = [i for i in self._used if self.slots[i].ticket is None]
        shared = {i: shared_tokens(chain, self.slots[i].links) for i in self._used}
        empty = self._first_empty()
        if not multiuser or len(self.slots) == 1:
            # Every prompt shares the chat template's first tokens with a slot that holds one: a used slot
            # goes before an empty one, as it would in Ollama.
            if not used:
                return Pick(empty, 0, None)
            longest = max(used, key=lambda i: (shared[i], -i))
            slot = self.slots[longest]
            return Pick(longest, shared[longest], slot if slot.tokens > shared[longest] else None)
        best = max(shared, key=lambda i: (shared[i], -i), default=None)
        if best is not None and self.slots[best].ticket is None and shared[best] == self.slots[best].tokens:
            return Pick(best, shared[best], None)
        most = max(shared.values(), default=0)
        if empty is not None:
            return Pick(empty, most, None)
        oldest = min(used, key=lambda i: (self.slots[i].last_used, i))
        slot = self.slots[oldest]
        return Pick(oldest, most, slot if slot.tokens > shared[oldest] else None)

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
        self._tickets[ticket] = pick.slot
        if self.slots[pick.slot].tokens:
            self._used[pick.slot] = None
        else:
            self._used.pop(pick.slot, None)
        return pick.shared

    def release(self, ticket: str, now: float) -> None:
        index = self._tickets.pop(ticket, None)
        if index is not None:
            slot = self.slots[index]
            slot.ticket, slot.ended = None, now

    def held(self) -> list[CacheSlot]:
        """The slots that hold a prompt."""
        return [self.slots[i] for i in sorted(self._used)]

    def _first_empty(self) -> int | None:
        """The lowest slot that holds nothing and runs nothing."""
        return next((i for i, slot in enumerate(self.slots) if not slot.tokens and slot.ticket is None), None)

    def _grow(self, slots: int) -> None:
        while len(self.slots) < slots:
            self.slots.append(CacheSlot())
