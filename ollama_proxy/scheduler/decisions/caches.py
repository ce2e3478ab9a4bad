"""What one model's llama-server holds: its slots' prompts and its RAM prompt cache, as it chooses slots (pure).

Ollama 0.30 and later run each loaded model in llama.cpp's ``llama-server``, started with
``-np NUM_PARALLEL`` and sent every prompt with ``cache_prompt: true``. It keeps, in each
slot, the prompt it last read, and reads again only what a new prompt does not share with
it. A request takes the idle slot whose prompt is over a tenth of its own
(``--slot-prompt-similarity`` 0.1), the most similar; otherwise the least recently used idle
slot, a never-used one first. A slot taken that way, or by similarity keeping under half of
what it held, is saved to the RAM prompt cache (``--cache-ram``, 8 GiB) first, and the saved
prompt that serves the request better is loaded into it; once a request has its slot, every
idle slot is saved there too. The RAM cache drops its oldest prompts when full. So a
conversation pushed out of its slot is still cheap on the server that read it, unless a
similar prompt took its slot before it was saved.

The proxy knows every prompt it sent (``prefix``: chains of hashed links with estimated
tokens), so it can tell, before sending one, how much of it a server holds and what it would
lose. What Ollama reports back (the time it took to read the prompt, up to 0.33) confirms or
corrects it.

A slot holds at most the model's context (``num_ctx``): Ollama cuts a longer conversation's first
messages until it fits (``chatPrompt`` in ``server/prompt.go``), then a prompt still too long
loses its middle (``llm/llama_server.go``). Such a prompt is not the chain the proxy hashed: it
reads nothing from cache here, and what it leaves in its slot is nothing the proxy can compare
(``context``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ollama_proxy.scheduler.decisions.prefix import Chain, Link, links_of, prompt_tokens, shared_tokens

SIMILARITY = 0.1  # llama-server's --slot-prompt-similarity
KEEP_WHEN_SIMILAR = 0.5  # a slot taken by similarity is saved first if the prompt keeps less of it than this
LOAD_AT_LEAST = 0.25  # a saved prompt is loaded only if the request keeps this much of it


@dataclass(frozen=True)
class Prompt:
    """A prompt a slot or the RAM cache holds."""

    chain: Chain
    links: dict[int, Link]
    tokens: int
    owner: tuple = ()  # whose prompt it is (``Share.shown``: by name), for the admin page
    tenant: tuple = ()  # whose prompts placement may send one another to (``placement.tenant``)
    ended: float | None = None  # when the request that read it ended (None: it still runs)
    came_back: float | None = None  # seconds its conversation took to ask again after its turn before (None: new)

    @classmethod
    def of(cls, chain: Chain, owner: tuple = (), tenant: tuple = (), came_back: float | None = None) -> Prompt | None:
        return cls(chain, links_of(chain), prompt_tokens(chain), owner, tenant, came_back=came_back) if chain else None

    def shared(self, chain: Chain) -> int:
        """The tokens ``chain`` shares with this prompt, from their start."""
        return shared_tokens(chain, self.links)

    def of_tenant(self, tenant: tuple | None) -> bool:
        """Whether this prompt is ``tenant``'s (anyone's, for a ``tenant`` of None)."""
        return tenant is None or self.tenant == tenant


@dataclass
class CacheSlot:
    prompt: Prompt | None = None  # None: empty, or holding a prompt the proxy cannot compare (no chain)
    ticket: str | None = None  # the request using it now
    last_used: float = -1.0  # when its last request ended; never used: -1, the oldest

    @property
    def tokens(self) -> int:
        return self.prompt.tokens if self.prompt is not None else 0


@dataclass(frozen=True)
class Pick:
    """Where a prompt would go on this server now, and what it would read from cache and lose."""

    slot: int
    cached: int  # the prompt's tokens already held (in the slot, or loaded into it from RAM)
    restored: int | None  # the RAM cache's entry loaded into the slot, if one is
    saves: bool  # the slot's prompt is saved to the RAM cache before it is replaced
    lost: int  # tokens of other prompts that vanish from the server: the slot's or a RAM entry's
    foreign: bool = False  # the cached tokens are another tenant's prompt
    pushed: int = 0  # of ``lost``, those of the slot's own prompt (or the RAM entry loaded there): held, now gone


class PromptCaches:
    """The slots and the RAM prompt cache of one model loaded on one server."""

    def __init__(self, slots: int, ram_tokens: int | None = None) -> None:
        """``ram_tokens``: the RAM cache's size, in the proxy's estimated tokens (None: no limit; 0: none)."""
        self.size = max(1, slots)
        # The slots used so far, in the order of their first use. The others are all alike (empty, never used,
        # so the least recently used): none is made until it is taken, so that a server declared with many
        # slots costs each request only the slots it has used.
        self.slots: list[CacheSlot] = []
        self.ram: list[Prompt] = []  # oldest first
        self.ram_tokens = ram_tokens
        self.context: float | None = None  # the most a slot holds, in estimated tokens (None: not known)
        self._tickets: dict[str, int] = {}  # request -> the slot it runs on

    def resize(self, slots: int, ram_tokens: int | None) -> None:
        """Take the slots and RAM size the server runs the model with (learned after the runner was made)."""
        self.size = max(1, slots)
        while len(self.slots) > self.size and self.slots[-1].ticket is None:
            self.slots.pop()
        self.ram_tokens = ram_tokens
        self._trim()

    def limit(self, context: float | None) -> None:
        """Take the most a slot holds (the model's context, in estimated tokens); drop the prompts held past it."""
        self.context = context
        for slot in self.slots:
            if slot.prompt is not None and not self.fits(slot.prompt.chain):
                slot.prompt = None
        self.ram = [saved for saved in self.ram if self.fits(saved.chain)]

    def fits(self, chain: Chain) -> bool:
        """Whether a slot holds ``chain`` as the proxy hashed it, not cut to the context."""
        return self.context is None or prompt_tokens(chain) <= self.context

    def readable(self, chain: Chain) -> float:
        """The tokens of ``chain`` a slot reads at most: a longer prompt is cut to the context."""
        tokens = prompt_tokens(chain)
        return tokens if self.context is None else min(tokens, self.context)

    @property
    def slot_count(self) -> int:
        """The slots the server has now: those it runs with, and any beyond that still busy since a resize."""
        return max(self.size, len(self.slots))

    def engine_index(self, index: int) -> int:
        """The number llama-server gives the slot this mirror numbers ``index``, the slots being numbered here in
        the order of their first use: llama-server takes the last of its never-used slots first (all alike least
        recently used, compared with ``<=``), so its slot N-1 is used first, then N-2. Its lower numbers read first
        (``side_by_side``), and its log and the admin page name slots by them."""
        return self.slot_count - 1 - index

    def running_slots(self) -> dict[str, int]:
        """The slot each request running here took."""
        return self._tickets

    def pick(self, chain: Chain, tenant: tuple | None = None, freed: int | None = None) -> Pick | None:
        """The slot a prompt ``chain`` takes now (slot ``freed``, busy, counted idle) and what it reads from cache;
        None if every slot is busy.

        ``tenant``: whose request it is, to tell whether what it would read from cache is another tenant's.
        """
        chain = chain if self.fits(chain) else ()
        index, saves = self._choose(chain, freed=freed)
        if index is None:
            return None
        slot = self.slots[index] if index < len(self.slots) else CacheSlot()
        source = slot.prompt if chain else None
        restored, lost = None, 0
        if saves and self.ram_tokens != 0:
            # llama-server saves the slot's prompt first, which may push out the entry that would have served,
            # and other prompts held nowhere else.
            ram = self._with_saved(slot.prompt)
            restored = self._restorable(slot, chain, ram)
            if restored is not None:
                source = ram[restored]
            lost = sum(self._lost(saved, chain, slot.prompt) for saved in self.ram if saved not in ram)
        cached = source.shared(chain) if source is not None else 0
        pushed = 0
        if slot.prompt is not None and not self._kept(index, saves):
            pushed = slot.prompt.tokens - (slot.prompt.shared(chain) if chain else 0)
        if source is not None and source is not slot.prompt:  # a RAM entry, loaded and then overwritten
            pushed += self._lost(source, chain, slot.prompt if saves else None)
        foreign = cached > 0 and not source.of_tenant(tenant)
        return Pick(index, min(cached, max(0, prompt_tokens(chain) - 1)), restored, saves, lost + pushed, foreign,
                    pushed)

    def _lost(self, dropped: Prompt, chain: Chain, saved: Prompt | None) -> int:
        """The tokens of a RAM entry that saving ``saved`` drops, and that no slot, nor ``saved``, nor the new
        prompt ``chain`` holds: read again whole, should its conversation come back."""
        if (saved is not None and saved.shared(dropped.chain) >= dropped.tokens) or any(
                slot.prompt is not None and slot.prompt.shared(dropped.chain) >= dropped.tokens for slot in self.slots):
            return 0
        return dropped.tokens - (dropped.shared(chain) if chain else 0)

    def survives(self, index: int, incoming: int) -> bool:
        """Whether slot ``index``'s prompt, replaced there by one of ``incoming`` tokens, stays in the RAM cache
        beside what every slot then holds: each idle slot is saved there at every request's start."""
        beside = incoming + sum(slot.tokens for i, slot in enumerate(self.slots) if i != index)
        return self.ram_tokens is None or self.slots[index].tokens + beside <= self.ram_tokens

    def _kept(self, index: int, saves: bool) -> bool:
        """Whether the prompt of slot ``index`` stays on the server when another replaces it there."""
        prompt = self.slots[index].prompt
        fits = self.ram_tokens is None or 0 < prompt.tokens <= self.ram_tokens
        return (saves and fits) or self._saved_somewhere(prompt) or self._elsewhere(index, prompt)

    def take(self, ticket: str, chain: Chain, now: float, owner: tuple = (), tenant: tuple = (),
             asked: float | None = None) -> int:
        """Count a request in on the slot llama-server gives it; return the prompt tokens it reads from cache.

        ``asked``: when the request came; if it continues its own conversation, how long that took to come back
        is kept with its prompt.
        """
        chain = chain if self.fits(chain) else ()
        pick = self.pick(chain)
        if pick is None:  # more running than the mirror has slots (adopted work): no slot to tell of
            return 0
        if pick.slot == len(self.slots):
            self.slots.append(CacheSlot())
        slot = self.slots[pick.slot]
        before = self.ram[pick.restored] if pick.restored is not None else slot.prompt
        came_back = None
        if (before is not None and before.owner == owner and before.ended is not None and asked is not None
                and before.shared(chain) >= before.tokens):
            came_back = max(0.0, asked - before.ended)
        if pick.saves and self.ram_tokens != 0:
            self._save(slot.prompt)
        if pick.restored is not None:
            # The entry is found again: saving the slot's prompt may have dropped older ones before it.
            restored = self._restorable(slot, chain)
            if restored is not None:
                self.ram.pop(restored)
        slot.prompt, slot.ticket = Prompt.of(chain, owner, tenant, came_back), ticket
        self._tickets[ticket] = pick.slot
        if self.ram_tokens != 0:
            for idle in self.slots:
                if idle.ticket is None and idle.prompt is not None:
                    self._save(idle.prompt)
        return pick.cached

    def release(self, ticket: str, now: float) -> None:
        """Free a request's slot: it keeps the prompt it read."""
        index = self._tickets.pop(ticket, None)
        if index is not None and index < len(self.slots):
            slot = self.slots[index]
            slot.ticket, slot.last_used = None, now
            if slot.prompt is not None:
                slot.prompt = replace(slot.prompt, ended=now)

    def forget(self, chain: Chain) -> None:
        """Drop what the mirror holds of ``chain`` beyond its first link: the server said it did not hold it."""
        self.ram = [saved for saved in self.ram if saved.shared(chain) <= chain[0].tokens]

    def holds(self, chain: Chain, tenant: tuple | None = None) -> int:
        """The most of ``chain`` this server holds anywhere: in a slot, busy or not, or in RAM (of ``tenant``'s
        prompts only, if given)."""
        if not self.fits(chain):
            return 0
        held = [slot.prompt for slot in self.held()] + self.ram
        return max((prompt.shared(chain) for prompt in held if prompt.of_tenant(tenant)), default=0)

    def held(self) -> list[CacheSlot]:
        """The slots that hold a prompt."""
        return [slot for slot in self.slots if slot.prompt is not None]

    def conversations(self, chain: Chain = (), tenant: tuple | None = None) -> int:
        """How many conversations this server holds, in slots and in RAM, besides the one ``chain`` continues (if
        ``tenant``'s, when given): its prompts, less those a longer one held here continues (an idle slot's copy in
        RAM, an earlier turn's)."""
        distinct: list[Prompt] = []
        for prompt in sorted([slot.prompt for slot in self.held()] + self.ram, key=lambda held: -held.tokens):
            if not any(longer.shared(prompt.chain) >= prompt.tokens for longer in distinct):
                distinct.append(prompt)
        return sum(1 for prompt in distinct if prompt.shared(chain) < prompt.tokens or not prompt.of_tenant(tenant))

    def question_slot(self, taken: int | None = None) -> int | None:
        """The slot a prompt like none held takes now, with slot ``taken`` busy too: a never-used one first, else
        the least recently used idle one; None if none is idle. A person's short question shares too little with
        any slot to be placed by similarity."""
        return self._choose((), taken)[0]

    def question_overtakes(self, ticket: str) -> bool:
        """Whether a question reaching llama-server just before running ``ticket``'s prompt would take its slot: the
        least recently used of the idle ones, that slot counted idle (a never-used one goes before both)."""
        slot = self._tickets.get(ticket)
        if slot is None or len(self.slots) < self.size:
            return False
        return self._least_recently_used(freed=slot) == slot

    def _choose(self, chain: Chain, taken: int | None = None, freed: int | None = None) -> tuple[int | None, bool]:
        """The slot llama-server gives ``chain`` (slot ``taken`` counted busy too, slot ``freed`` idle), and whether
        it saves that slot's prompt first."""
        best, best_similarity = None, 0.0
        tokens = prompt_tokens(chain)
        for index, slot in enumerate(self.slots):
            if (slot.ticket is not None and index != freed) or index == taken or slot.prompt is None or not tokens:
                continue
            similarity = slot.prompt.shared(chain) / tokens
            if similarity >= best_similarity and similarity > SIMILARITY:  # of equals, llama-server's first
                best, best_similarity = index, similarity
        if best is not None:
            return best, best_similarity * tokens / self.slots[best].tokens < KEEP_WHEN_SIMILAR
        unused = len(self.slots) + (taken == len(self.slots))
        if unused < self.size:
            return unused, True  # a never-used slot: the least recently used of all
        return self._least_recently_used(taken=taken, freed=freed), True

    def _least_recently_used(self, taken: int | None = None, freed: int | None = None) -> int | None:
        """The least recently used idle slot, slot ``taken`` counted busy and slot ``freed`` idle; None if none is."""
        idle = [index for index, slot in enumerate(self.slots)
                if (slot.ticket is None or index == freed) and index != taken]
        # Of equals, llama-server's last, as it compares with <=: here the first, the numbers running the other way.
        return min(idle, key=lambda index: self.slots[index].last_used, default=None)

    def _restorable(self, slot: CacheSlot, chain: Chain, ram: list[Prompt] | None = None) -> int | None:
        """The RAM entry (of ``ram``, the RAM cache as it is if not given) llama-server loads into ``slot`` for
        ``chain``: one that both keeps more of itself and serves more of the prompt than the slot does."""
        tokens = prompt_tokens(chain)
        if not tokens:
            return None
        shared = slot.prompt.shared(chain) if slot.prompt is not None else 0
        best_keep = shared / slot.tokens if slot.tokens else -1.0
        best_similarity = shared / tokens
        best = None
        for index, saved in enumerate(self.ram if ram is None else ram):
            common = saved.shared(chain)
            keep, similarity = common / saved.tokens, common / tokens
            if keep >= LOAD_AT_LEAST and best_keep < keep and best_similarity < similarity:
                best, best_keep, best_similarity = index, keep, similarity
        return best

    def _save(self, prompt: Prompt | None) -> None:
        """Save a slot's prompt to the RAM cache, unless it holds it already (llama-server's ``alloc``)."""
        self.ram = self._with_saved(prompt)

    def _with_saved(self, prompt: Prompt | None) -> list[Prompt]:
        """The RAM cache once ``prompt`` is saved to it: the entries it contains dropped, the oldest past the size."""
        if prompt is None or self._saved_somewhere(prompt):
            return self.ram
        if self.ram_tokens is not None and prompt.tokens > self.ram_tokens:
            return self.ram
        ram = [saved for saved in self.ram if prompt.shared(saved.chain) < saved.tokens]
        ram.append(prompt)
        return _trimmed(ram, self.ram_tokens)

    def _saved_somewhere(self, prompt: Prompt) -> bool:
        return any(saved.shared(prompt.chain) >= prompt.tokens for saved in self.ram)

    def _elsewhere(self, index: int, prompt: Prompt) -> bool:
        """Whether another slot holds all of ``prompt``."""
        return any(i != index and other.prompt is not None and other.prompt.shared(prompt.chain) >= prompt.tokens
                   for i, other in enumerate(self.slots))

    def _trim(self) -> None:
        self.ram = _trimmed(self.ram, self.ram_tokens)


def _trimmed(ram: list[Prompt], ram_tokens: int | None) -> list[Prompt]:
    """``ram`` less its oldest entries, until the rest fit in ``ram_tokens`` (None: no limit)."""
    if ram_tokens is None:
        return ram
    total, first = sum(saved.tokens for saved in ram), 0
    while first < len(ram) and total > ram_tokens:
        total -= ram[first].tokens
        first += 1
    return ram[first:]
