"""The slots kept free for the people using a model (mixed into ``core.Scheduler``, whose state it reads).

People asking short questions beside batch work or agents' long prompts find a slot free: while they
use a model, those leave them one, and one where no long prompt is read ahead of them (``_leaves_too_little``).
"""

from __future__ import annotations

import math

from ollama_proxy.scheduler.decisions.fairness import class_rank
from ollama_proxy.scheduler.decisions.placement import NEGLIGIBLE, QUESTION_READ_WAIT, QUESTION_TOKENS, STARTS_APART
from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Placement, Start
from ollama_proxy.scheduler.decisions.tickets import Ticket


class Headroom:
    """Whether a grant would leave people's questions too little: no slot, or one behind a long reading."""

    def _within_headroom(self, ticket: Ticket, placement: Placement | None, now: float) -> Placement | None:
        """Return ``placement`` if it leaves people enough, else a load of the model where it is not loaded and
        nothing need be unloaded, if that does: a request held from the warm slots kept free starts on slots no one
        uses, not after them."""
        if placement is None or not self._leaves_too_little(ticket, placement, now):
            return placement
        if not self._takes_the_headroom(ticket, placement, now):
            return None  # held to keep long prompts apart, not for the slot kept: another server's load will not do
        loads = [p for name in ticket.candidates if (server := self.servers.get(name)) is not None
                 and ticket.model not in server.runners
                 and (p := server.placement(ticket.model, ticket.asked, ticket.enforced, ticket.id)) is not None
                 and p.evict is None]
        best = min(loads, key=lambda p: self.estimates.load_seconds(ticket.model, p.server), default=None)
        return None if best is None or self._leaves_too_little(ticket, best, now) else best

    def _leaves_too_little(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a grant would take what people's questions need: a slot kept for them (``_takes_the_headroom``),
        a slot where no long prompt is read ahead of them (``_leaves_no_slot_for_short``), or the moment between two
        long prompts' starts on one runner (``_paced``, ``_too_close``)."""
        return (self._leaves_no_slot_for_short(ticket, placement, now) or self._paced(ticket, placement, now)
                or self._too_close(ticket, placement, now) or self._takes_the_headroom(ticket, placement, now))

    def _takes_the_headroom(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether batch work would take one of the warm slots kept for people's questions, or unload or reload a
        model for itself while they may ask; or an interactive job's first answers would take the last of them.

        Strict priority alone still makes a question wait for a batch answer to end whenever batch work holds
        every slot; ``interactive_headroom`` warm slots are left free for as long as questions for the model may
        come (``_questions_may_come``), and for a job whose answers' length is not known yet
        (``_first_answers_of_a_job``). A load that unloads nothing takes no one's slot.
        """
        headroom = self.bounds.interactive_headroom
        if not headroom:
            return False
        if class_rank(ticket.share, now - ticket.enqueued, self.bounds.batch_ageing) == 0:
            if placement.start is not Start.WARM or not self._first_answers_of_a_job(ticket, now):
                return False
        elif not self._questions_may_come(ticket.model, now):
            return False
        elif placement.start is not Start.WARM:
            return placement.start is Start.RELOAD or placement.evict is not None
        free = sum(self.servers[name].free_slots(ticket.model) for name in ticket.candidates if name in self.servers)
        return free - 1 < headroom

    def _first_answers_of_a_job(self, ticket: Ticket, now: float) -> bool:
        """Whether ``ticket`` is one of an interactive principal's first answers, asked as many at once as the model
        has slots, while someone else's questions may come: the kept slot waits for one of its running answers to end.

        Such a job, by class one of the people, would start an answer in every slot before anything says its
        answers are long, and pacing (``_paced``) can act only once one has ended: the first questions would wait
        for the whole first round. Never where the model has fewer than three warm slots, nor for a principal
        asking fewer at once than the slots (a person's answer and its title never hold each other).
        """
        model, principal = ticket.model, ticket.share.principal
        if self.estimates.own_slot_seconds(model, principal) is not None:
            return False  # an answer of its own has ended: pacing knows its length
        slots = sum(server.slots_of(model) for name in ticket.candidates
                    if (server := self.servers.get(name)) is not None and model in server.runners)
        if slots < 3:
            return False
        running = sum(1 for run in self.running.values()
                      if run.ticket.model == model and run.ticket.share.principal == principal)
        if not running:
            return False  # nothing of its own would end to free the slot: it may wait for others forever
        waiting = sum(1 for t in self.waiting.values() if t.model == model and t.share.principal == principal)
        if running + waiting < slots:
            return False
        first = self.first_asked.get(model, -math.inf)
        return (now - first < self.bounds.headroom_window
                or self.pacing.others_asked(model, principal, now, self.bounds.headroom_window))

    def _questions_may_come(self, model: str, now: float) -> bool:
        """Whether a question for ``model`` may come any moment: one came within ``headroom_window``, or the
        scheduler has not yet watched the model that long (it cannot tell that no one uses it)."""
        since = max(self.last_interactive.get(model, -math.inf), self.first_asked.get(model, -math.inf))
        return now - since < self.bounds.headroom_window

    def _too_close(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a long prompt would start on a warm runner within ``STARTS_APART`` of the last start there.

        A question is held only where, reaching llama-server first, it would take the slot whose cache a prompt
        granted there a moment before was placed to read (``caches.question_overtakes``): that prompt would be read
        again whole, and the question wait behind it. Otherwise it reads little, cached or not, and a person
        waits for it.
        """
        if placement.start is not Start.WARM:
            return False
        runner = self.servers[placement.server].runners[ticket.model]
        if prompt_tokens(ticket.prefix) >= QUESTION_TOKENS:
            return now - runner.last_start < STARTS_APART
        return any(run.placement.server == placement.server and run.ticket.model == ticket.model
                   and now - run.started < STARTS_APART and run.cached > NEGLIGIBLE
                   and runner.caches.question_overtakes(run.ticket.id) for run in self.running.values())

    def _paced(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a long request of a principal that just started one waits for its pace (``pacing``) to take
        a warm slot (a load starts a server's slots afresh: nothing there to keep apart)."""
        if not self.bounds.interactive_headroom:
            return False  # nothing kept for people's questions: every slot as soon as it frees
        if placement.start is not Start.WARM or class_rank(ticket.share, now - ticket.enqueued,
                                                           self.bounds.batch_ageing) != 0:
            return False  # a load, or batch work, which leaves people their headroom instead
        own = self.estimates.own_slot_seconds(ticket.model, ticket.share.principal)
        if own is None:
            return False  # none of its answers has ended: nothing says they are long
        if not any(run.ticket.model == ticket.model and run.ticket.share.principal == ticket.share.principal
                   for run in self.running.values()):
            return False  # none of its answers runs: there is no end to keep this one's apart from
        if any(t.model == ticket.model and class_rank(t.share, now - t.enqueued, self.bounds.batch_ageing) > 0
               for t in self.waiting.values()):
            return False  # batch work would take the slot held: class goes first, and no slot stays free anyway
        slots = sum(server.slots_of(ticket.model) for name in ticket.candidates
                    if (server := self.servers.get(name)) is not None and ticket.model in server.runners)
        return self.pacing.holds(ticket.model, ticket.share.principal, own, slots, now, self.bounds.headroom_window,
                                 lambda other: self.estimates.own_slot_seconds(ticket.model, other))

    def _leaves_no_slot_for_short(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether a long prompt would take the last free slot while questions come, or leave none where a question
        is not read behind a long prompt (``_reads_ahead_of_questions``).

        A question then finds a slot, and waits for no agent's turn to end, nor for its reading. As the
        interactive headroom, for as long as questions come; never where the candidates have fewer than three
        slots, so long prompts always have two or more.
        """
        if (prompt_tokens(ticket.prefix) < QUESTION_TOKENS or placement.start is not Start.WARM
                or now - self.last_short.get(ticket.model, -math.inf) >= self.bounds.headroom_window):
            return False
        servers = [self.servers[name] for name in ticket.candidates if name in self.servers]
        if sum(server.slots_of(ticket.model) for server in servers if ticket.model in server.runners) < 3:
            return False
        return sum(server.free_slots(ticket.model) for server in servers) < 2 or self._reads_ahead_of_questions(
            ticket, placement, now)

    def _reads_ahead_of_questions(self, ticket: Ticket, placement: Placement, now: float) -> bool:
        """Whether ``ticket``'s prompt, read where ``placement`` puts it, would make the next question wait longer
        than ``QUESTION_READ_WAIT`` in whichever free slot it took: llama-server reads the lower slots' prompts
        first, and a question takes the least recently used idle slot, which may be above the one this prompt
        takes (``caches.question_slot``). Held, it waits at most as long as it would make that question wait,
        counted from when it was first held, not from its arrival (it may have waited long for any slot): where
        slots free in an order that never leaves one clear (a single server, its least recently used slot the
        lowest), it then goes."""
        pick = self._cache_pick(ticket, placement.server)
        if pick is None:
            return False
        caches = self.servers[placement.server].runners[ticket.model].caches
        own = self.estimates.prefill_seconds(ticket.model, placement.server,
                                             caches.readable(ticket.prefix) - pick.cached)
        before = after = math.inf
        for name, server in self.servers.items():  # any server a question may take, not only this request's
            runner = server.runners.get(ticket.model)
            if runner is None:
                continue
            free = server.free_slots(ticket.model)
            if free > 0 and (slot := runner.caches.question_slot()) is not None:
                before = min(before, self._reading_ahead(ticket.model, name, slot, now))
            taken = pick.slot if name == placement.server else None
            if free - (taken is not None) > 0 and (slot := runner.caches.question_slot(taken)) is not None:
                engine = runner.caches.engine_index
                behind = own if taken is not None and engine(taken) < engine(slot) else 0.0
                after = min(after, self._reading_ahead(ticket.model, name, slot, now) + behind)
        if after <= max(before, QUESTION_READ_WAIT):
            return False
        if ticket.held_for_questions is None:
            ticket.held_for_questions = now
        return now - ticket.held_for_questions < after
