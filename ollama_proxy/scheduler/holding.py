"""Slots held back: for a conversation's next turn, and for the people using a model.

Coding agents send their whole conversation again each turn; the slot whose cache
holds it reads only what is new. A slot's conversation is held while it is
expected back (``_held``), and a request that would overwrite it waits a bound
first (``_overwrites_held``); where a request goes weighs what it would read and
what it would overwrite (``_prompt_cost``).

People asking short questions beside batch work or agents' long prompts find a
slot free: while they use a model, those leave them one (``_leaves_too_little``).
"""

from __future__ import annotations

import math

from ollama_proxy.scheduler.caches import CacheSlot, Pick
from ollama_proxy.scheduler.fairness import class_rank
from ollama_proxy.scheduler.prefix import prompt_tokens, shared_tokens
from ollama_proxy.scheduler.servers import Placement, Start
from ollama_proxy.scheduler.tickets import Ticket

HOLD_TOKENS = 1024  # a prompt shorter than this is read again in moments: not worth holding a slot for
RETURN_MARGIN, RETURN_SLACK = 2.0, 1.0  # a conversation is expected back within twice its last return time, and 1 s


class PromptHolds:
    """The scheduler's holds and headroom (mixed into ``core.Scheduler``, whose state they read)."""

    def _held(self, slot: CacheSlot, now: float) -> bool:
        """Whether a slot's conversation is held for its next turn: long enough, and back or expected back soon.

        Expected back: within twice the time it last took to come back, and a second (a turn's think
        time; a first turn, ``prefix_hold``); never longer than ``prefix_hold`` after its turn ended.
        """
        if slot.tokens < HOLD_TOKENS or not self.bounds.prefix_hold:
            return False
        expected = self.bounds.prefix_hold if slot.came_back is None else RETURN_MARGIN * slot.came_back + RETURN_SLACK
        return now - slot.ended < min(expected, self.bounds.prefix_hold) or self._back_for(slot)

    def _held_free(self, runner, now: float) -> int:
        """How many of ``runner``'s free slots hold a conversation for its next turn."""
        return sum(1 for slot in runner.caches.held() if slot.ticket is None and self._held(slot, now))

    def _back_for(self, slot: CacheSlot) -> bool:
        """Whether the conversation a slot holds has come back: a request of its owner's waits that continues it."""
        return self.fair.inside(slot.owner) and any(
            t.share.leaf == slot.owner and t.prefix and shared_tokens(t.prefix, slot.links) == slot.tokens
            for t in self.waiting.values())

    def _cache_pick(self, ticket: Ticket, server: str) -> Pick | None:
        """The slot of ``server``'s warm runner Ollama would give ``ticket`` now (None: no prompt, or none free)."""
        if not ticket.prefix:
            return None
        spec = self.servers[server].spec
        return self.servers[server].runners[ticket.model].caches.pick(ticket.prefix, spec.num_parallel,
                                                                      spec.multiuser_cache)

    def _overwrites_held(self, ticket: Ticket, pick: Pick | None, now: float) -> bool:
        """Whether ``ticket`` would overwrite another's conversation held for its next turn, before its wait allows.

        A long prompt may once it has waited ``prefix_hold``; a short one (a question) once it has waited
        ``yield_within``: by then the conversation is mostly back on its slot, and the question finds
        another (long prompts leave it one, ``_leaves_too_little``).
        """
        if self._held_lost(ticket, pick, now) is None:
            return False
        bound = self.bounds.prefix_hold if prompt_tokens(ticket.prefix) >= HOLD_TOKENS else self.bounds.yield_within
        return now - ticket.enqueued < bound

    def _prompt_cost(self, ticket: Ticket, server: str, pick: Pick | None, now: float) -> float:
        """Seconds of prompt reading ``ticket`` costs on ``server``'s warm runner now: its own, and what it overwrites.

        Its own: the part of its prompt no slot there holds. What it overwrites: a conversation the slot
        Ollama would give it holds, if that conversation is held for its next turn (``_held``): it is
        likely to come back, and would be read again.
        """
        if pick is None:
            return 0.0
        tokens = prompt_tokens(ticket.prefix) - pick.shared
        if (lost := self._held_lost(ticket, pick, now)) is not None:
            tokens += lost.tokens
        return self.estimates.prefill_seconds(ticket.model, server, tokens)

    def _held_lost(self, ticket: Ticket, pick: Pick | None, now: float) -> CacheSlot | None:
        """Another's conversation, held for its next turn, that ``ticket`` would overwrite on ``pick``; else None."""
        lost = pick.overwritten if pick is not None else None
        if lost is None or lost.owner == ticket.share.leaf or not self._held(lost, now):
            return None
        return lost

    def _leaves_too_little(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a batch request would take a slot people using its model may need any moment.

        Strict priority alone still makes a question wait for a batch answer to end whenever batch
        work holds every slot; ``interactive_headroom`` warm slots are left free for as long as
        interactive requests for the model keep coming (``headroom_window``).
        """
        if self._leaves_no_slot_for_short(ticket, placement, now):
            return True
        headroom = self.bounds.interactive_headroom
        if not headroom or class_rank(ticket.share, now - ticket.enqueued, self.bounds.batch_ageing) == 0:
            return False
        if now - self.last_interactive.get(ticket.model, -math.inf) >= self.bounds.headroom_window:
            return False
        if placement.start is not Start.WARM:
            return True
        free = sum(self.servers[name].free_slots(ticket.model) for name in ticket.candidates if name in self.servers)
        return free - 1 < headroom

    def _leaves_no_slot_for_short(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a long prompt would take the last free slot that holds no conversation, while questions come.

        A question then finds that slot and overwrites nothing an agent comes back to, nor waits for one.
        As the interactive headroom, for as long as questions come; never where the candidates have
        fewer than three slots, so long prompts always have two or more.
        """
        if (prompt_tokens(ticket.prefix) < HOLD_TOKENS or placement.start is not Start.WARM
                or now - self.last_short.get(ticket.model, -math.inf) >= self.bounds.headroom_window):
            return False
        servers = [self.servers[name] for name in ticket.candidates if name in self.servers]
        if sum(server.spec.num_parallel for server in servers if ticket.model in server.runners) < 3:
            return False
        pick = self._cache_pick(ticket, placement.server)
        caches = self.servers[placement.server].runners[ticket.model].caches
        if pick is None or self._held(caches.slots[pick.slot], now):
            return False  # it takes a slot held for a conversation (its own): none that questions use
        unheld = 0
        for other in servers:
            runner = other.runners.get(ticket.model)
            if runner is not None:
                unheld += max(0, other.free_slots(ticket.model) - self._held_free(runner, now))
        return unheld < 2
