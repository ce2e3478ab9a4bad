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

# Seconds a request given a slot may take to reach Ollama, and an end to reach the proxy: a slot freed this
# soon after a grant may have been free when that request arrived, and Ollama may have given it that slot.
ARRIVAL_RACE = 0.05


@dataclass
class CacheSlot:
    links: dict[int, Link] = field(default_factory=dict)  # the prompt it holds, as kept links by position
    tokens: int = 0
    owner: tuple = ()  # whose prompt it is (``Share.leaf``: the principal, or an end user in it)
    ticket: str | None = None  # the request using it now
    last_used: float = -1.0  # when a request last took it; never: the oldest
    ended: float = -1.0  # when its last request ended
    came_back: float | None = None  # seconds its conversation last took to ask again after a turn ended


@dataclass
class Claim:
    """A request running on a slot: what it asked, and the slot as it was before it came."""

    ticket: str
    owner: tuple
    chain: Chain
    at: float  # when it was given the slot
    asked: float | None
    multiuser: bool
    slot: int = -1
    replaced: CacheSlot = field(default_factory=CacheSlot)


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
        self._claims: dict[str, Claim] = {}  # request -> how it came by its slot

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
        self._claim(Claim(ticket, owner, chain, now, asked, multiuser), pick)
        return pick.shared

    def release(self, ticket: str, now: float) -> None:
        """Free a request's slot; a request given a slot moments before may have found this one free instead."""
        index = self._tickets.pop(ticket, None)
        self._claims.pop(ticket, None)
        if index is None:
            return
        slot = self.slots[index]
        slot.ticket, slot.ended = None, now
        for claim in sorted(self._claims.values(), key=lambda claim: claim.at):
            if now - claim.at <= ARRIVAL_RACE:
                self._reconsider(claim)

    def _claim(self, claim: Claim, pick: Pick) -> None:
        before = self.slots[pick.slot]
        came_back = None
        if (before.owner == claim.owner and before.ended >= 0 and before.tokens
                and shared_tokens(claim.chain, before.links) == before.tokens):
            came_back = max(0.0, (claim.at if claim.asked is None else claim.asked) - before.ended)
        self.slots[pick.slot] = CacheSlot(links_of(claim.chain), prompt_tokens(claim.chain), claim.owner,
                                          claim.ticket, claim.at, came_back=came_back)
        claim.slot, claim.replaced = pick.slot, before
        self._claims[claim.ticket] = claim
        self._tickets[claim.ticket] = pick.slot
        self._note_used(pick.slot)

    def _reconsider(self, claim: Claim) -> None:
        """Give ``claim`` the slot Ollama would have, had it arrived after the slots free now were freed.

        Its grant and another request's end crossed on the way: Ollama may have seen that request's
        slot free first, and given it to this one (a question ties with every conversation, and takes
        the first free slot).
        """
        self.slots[claim.slot] = claim.replaced
        del self._tickets[claim.ticket]
        self._note_used(claim.slot)
        self._claim(claim, self.pick(claim.chain, len(self.slots), claim.multiuser))

    def _note_used(self, index: int) -> None:
        if self.slots[index].tokens:
            self._used[index] = None
        else:
            self._used.pop(index, None)

    def held(self) -> list[CacheSlot]:
        """The slots that hold a prompt."""
        return [self.slots[i] for i in sorted(self._used)]

    def _first_empty(self) -> int | None:
        """The lowest slot that holds nothing and runs nothing."""
        return next((i for i, slot in enumerate(self.slots) if not slot.tokens and slot.ticket is None), None)

    def _grow(self, slots: int) -> None:
        while len(self.slots) < slots:
            self.slots.append(CacheSlot())
