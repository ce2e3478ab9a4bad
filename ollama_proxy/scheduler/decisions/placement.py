"""Where a prompt is cheapest to read.

Coding agents send their whole conversation again each turn; a server whose llama-server holds it,
in a slot or in its RAM prompt cache, reads only what is new (``caches``). A request goes to the
warm server where its prompt costs least to read, counting what it would push off that server for
good (``_prompt_cost``), then to the least busy. One whose prompt a busy server holds waits for that
server rather than read it all again elsewhere, while the wait there is expected to be shorter than
what that reading costs (its time, and as much of the other server's), and at most ``prefix_hold``
(``_worth_waiting``): a server's queue grows while another idles only for less than it costs. Nor does a long
prompt push a conversation expected back out of a server whose RAM cache cannot keep it, until its wait has cost
what that conversation would read again (``_displaces``): more conversations than a server keeps then take turns
at it in stretches, not a turn each, every one read again. Whose
prompt it is does not matter: one key's conversations are as much worth keeping as anyone's. But only a
tenant's own cached prompts draw its requests (``tenant``, ``scheduling.prompt_cache_isolation``): what an answer
read from cache, in its counts and its speed, would tell a probe how much of another tenant's prompt it guessed.

What each answer says it read (``_confirm``) bears the mirror out or corrects it: a predicted hit
that did not happen drops what the mirror held, and costs that server some of the proxy's trust
(``hits``); a turn whose prompt holds a running turn's answer ends that turn (``_answered_in``).

The slots kept free for people's questions are ``headroom``'s.
"""

from __future__ import annotations

from collections.abc import Iterator

from ollama_proxy.scheduler.decisions.caches import Pick
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import links_of, prompt_tokens, shared_tokens
from ollama_proxy.scheduler.decisions.servers import Placement, Runner, ServerSlots
from ollama_proxy.scheduler.decisions.side_by_side import read_beside, reading_left
from ollama_proxy.scheduler.decisions.tickets import PromptRead, Running, Ticket

QUESTION_TOKENS = 1024  # a prompt shorter than this is a question, not an agent's conversation
NEGLIGIBLE = 64  # tokens whose reading tells two servers' costs apart no more than the estimate's error
# How far apart two like servers' prefill rates, learned from timings, may be by noise alone: costs within it are
# alike, so a server measured a little faster does not take every new conversation while it has a free slot.
RATE_NOISE = 0.25
# A second of prompt reading costs twice: the request waits for it, and that server's GPU is taken from whoever
# else it serves for as long; a second waiting for a slot costs the request alone. So a request waits for the busy
# server that holds its prompt only while its wait stays under twice the reading that server saves it.
MOVE_COST = 2.0
# Seconds between two long prompts' starts on one runner. Granted together, they reach the engine in either order
# (two workers, two connections), and the slot each takes, and what of its prompt is cached there, depend on which
# comes first; a moment apart, they come in the order the mirror took them.
STARTS_APART = 0.2
# A conversation is expected back within twice the time it last took to come back, and a second more.
RETURN_MARGIN, RETURN_SLACK = 2.0, 1.0
# Seconds a person's question may wait, in the slot it would take, for the prompts lower slots read first: an
# agent's turn read from cache takes less, one read whole from its first token many times more.
QUESTION_READ_WAIT = 1.0


def tenant(share: Share, isolation: str) -> tuple:
    """Whose cached prompts a request of ``share`` may be placed on: its team's, its key's, or anyone's (``()``)."""
    if isolation == "off":
        return ()
    if isolation == "team" and share.team is not None:
        return ("team", share.team)
    return ("key", share.principal)


class PromptPlacement:
    """The scheduler's placement by prompt cache and its headroom (mixed into ``core.Scheduler``, whose state
    they read)."""

    def _answered_in(self, ticket: Ticket) -> list[Running]:
        """The running requests whose whole prompt ``ticket``'s continues with more: their answers came back.

        A conversation's next turn can only have been written after the last one's answer: that answer has
        ended, and its slot is free in Ollama, though its end has not reached the scheduler yet (another
        worker's client, a message on its way). Left running, it would send the turn away from its own slot.
        """
        if not ticket.prefix:
            return []
        tokens = prompt_tokens(ticket.prefix)
        mine = self._tenant(ticket)
        return [run for run in self.running.values()
                if run.ticket.model == ticket.model and run.ticket.prefix and self._tenant(run.ticket) == mine
                and prompt_tokens(run.ticket.prefix) < tokens
                and shared_tokens(run.ticket.prefix, links_of(ticket.prefix)) == prompt_tokens(run.ticket.prefix)]

    def _expected_run(self, ticket: Ticket, server: str, cached: int, now: float) -> float:
        """Seconds ``ticket`` is expected to hold its slot on ``server``: waiting for the prompts the slots below its
        own have left to read, reading what it lacks, then answering.

        Until the principal's answers have taught how long it answers (the time beyond its prompt's reading), its
        slot-time as its requests have taken it.
        """
        answering = self.estimates.generation_seconds(ticket.model, ticket.share.principal)
        if answering is None:
            return self._expected(ticket)
        caches = self.servers[server].runners[ticket.model].caches
        slot = caches.running_slots().get(ticket.id)
        behind = 0.0 if slot is None else self._reading_ahead(ticket.model, server, slot, now)
        reading = self.estimates.prefill_seconds(ticket.model, server, caches.readable(ticket.prefix) - cached)
        return behind + reading + answering

    def _reading_ahead(self, model: str, server: str, slot: int, now: float) -> float:
        """Seconds ``server``'s runner of ``model`` reads other prompts before one in ``slot`` gets a token read:
        what the requests running in the slots llama-server numbers below it (``caches.engine_index``) have left to
        read (``side_by_side.reading_left``)."""
        runner = self.servers[server].runners[model]
        slots, engine = runner.caches.running_slots(), runner.caches.engine_index
        reads = [(engine(slots[read.ticket]), max(read.started, runner.ready_at), read.tokens) for read in runner.reads
                 if read.ticket in slots and engine(slots[read.ticket]) < engine(slot)]
        if not reads:
            return 0.0
        rate = self.estimates.prefill_rate(model, server)
        return sum(reading_left(reads, now, rate).values()) / rate

    def _tenant(self, ticket: Ticket) -> tuple:
        return tenant(ticket.share, self.bounds.prompt_cache_isolation)

    def _cache_pick(self, ticket: Ticket, server: str) -> Pick | None:
        """Where ``server``'s warm runner would put ``ticket``'s prompt now (None: no prompt, or no idle slot)."""
        if not ticket.prefix:
            return None
        return self.servers[server].runners[ticket.model].caches.pick(ticket.prefix, self._tenant(ticket))

    def _cheapest(self, ticket: Ticket, warm: list[Placement], now: float) -> tuple[Placement, float, Pick | None]:
        """The warm placement where ``ticket``'s prompt costs least to read, and that cost.

        The reading weighs ``MOVE_COST`` a second, the wait before it (``_reading_ahead``: the prompts the slots
        below the one it takes have left to read) one: a person's question goes where no agent's long prompt is
        being read ahead of it, and a conversation does not leave the server that holds it only because another
        prompt is read there first.

        A server where llama-server would push a conversation it holds out of the slot it takes (a similar
        prompt's, replaced unsaved: another conversation after the same system text) is used only where every
        server would: taken, the two conversations would take the slot from each other turn after turn, each
        reading its own part again, while an empty slot elsewhere costs one reading. Costs within ``NEGLIGIBLE``
        tokens of reading are alike (every prompt shares the template's first tokens with any slot): of those,
        one where the prompt would not read another tenant's cached prompt (its speed would tell a probe how much
        it guessed), then the server with most free slots, then the one holding fewest other conversations, so that
        new conversations spread and one read again whole anyway goes back to the server that held it.

        A person waits for no cache: a question goes only where its few tokens are read within
        ``QUESTION_READ_WAIT`` of the soonest, whatever it would push out of a cache there; what it pushes out
        weighs only among those.
        """
        picks = {p.server: self._cache_pick(ticket, p.server) for p in warm}
        ahead = {p.server: 0.0 if picks[p.server] is None else self._reading_ahead(
            ticket.model, p.server, picks[p.server].slot, now) for p in warm}
        if prompt_tokens(ticket.prefix) < QUESTION_TOKENS:
            soonest = max(min(ahead.values()), QUESTION_READ_WAIT)
            warm = [p for p in warm if ahead[p.server] <= soonest]
        keeping = [p for p in warm if picks[p.server] is None or picks[p.server].pushed <= NEGLIGIBLE]
        warm = keeping or warm
        cost = {p.server: self._prompt_cost(ticket, p.server, picks[p.server]) for p in warm}
        weighed = {p.server: MOVE_COST * cost[p.server] + ahead[p.server] for p in warm}
        least = (min(weighed.values()) * (1 + RATE_NOISE)
                 + MOVE_COST * self.estimates.prefill_seconds(ticket.model, warm[0].server, NEGLIGIBLE))
        tenant = self._tenant(ticket)
        best = min((p for p in warm if weighed[p.server] <= least),
                   key=lambda p: (_reads_foreign(picks[p.server]), -self.servers[p.server].free_slots(ticket.model),
                                  self.servers[p.server].runners[ticket.model].caches.conversations(ticket.prefix,
                                                                                                   tenant),
                                  weighed[p.server], p.server))
        return best, cost[best.server], picks[best.server]

    def _prompt_cost(self, ticket: Ticket, server: str, pick: Pick | None) -> float:
        """Seconds of prompt reading ``ticket`` costs on ``server``'s warm runner now: the part of its prompt the
        server does not hold (as far as the server's answers have borne the mirror out), and the prompts it would
        push off the server for good."""
        if pick is None:
            return 0.0
        cached = 0 if pick.foreign else pick.cached * self.hits.reliability(server, ticket.model)
        readable = self.servers[server].runners[ticket.model].caches.readable(ticket.prefix)
        return self.estimates.prefill_seconds(ticket.model, server, readable - cached + pick.lost)

    def _displaces(self, ticket: Ticket, server: str, pick: Pick | None, now: float) -> int:
        """The tokens of a conversation expected back soon that ``ticket``, placed by ``pick``, pushes off
        ``server`` before it comes back: out of its slot, and then out of a RAM cache too small to keep it."""
        caches = self.servers[server].runners[ticket.model].caches
        if pick is None or pick.slot >= len(caches.slots):
            return 0
        prompt = caches.slots[pick.slot].prompt
        if prompt is None or prompt.tokens < QUESTION_TOKENS or prompt.ended is None:
            return 0
        kept = prompt.shared(ticket.prefix) if caches.fits(ticket.prefix) else 0
        if kept >= prompt.tokens or caches.survives(pick.slot, caches.readable(ticket.prefix)):
            return 0
        back = self.bounds.prefix_hold if prompt.came_back is None else RETURN_MARGIN * prompt.came_back + RETURN_SLACK
        return prompt.tokens - kept if now - prompt.ended < min(back, self.bounds.prefix_hold) else 0

    def _worth_waiting(self, ticket: Ticket, best: Placement, cost: float, ahead: list[Ticket], now: float,
                       pick: Pick | None = None) -> bool:
        """Whether ``ticket`` should wait: rather than push out, on ``best`` (by ``pick``), a conversation expected
        back, or for a busy server that holds more of its prompt than ``best`` does.

        For at most ``prefix_hold`` seconds from its arrival, and only while what it has waited (and, for a busy
        server, the wait expected for its slot, behind the others waiting for it) stays under the reading it spares,
        weighed by ``MOVE_COST``: a wait that runs long ends once it has cost as much. A question never waits for a
        cache: what one saves it is less than the estimate's error; it waits only for a slot that frees sooner than
        its first token would come on ``best`` (``_sooner_elsewhere``). Slots lent out are not busy
        (``_held_behind_loans``).
        """
        ticket.waits_for = None
        waited = now - ticket.enqueued
        if not self.bounds.prefix_hold or waited >= self.bounds.prefix_hold:
            return False
        if self._held_behind_loans(ticket, cost):
            return True
        if prompt_tokens(ticket.prefix) < QUESTION_TOKENS:
            return self._sooner_elsewhere(ticket, best, pick, ahead, now)
        displaced = self._displaces(ticket, best.server, pick, now)
        if waited < MOVE_COST * self.estimates.prefill_seconds(ticket.model, best.server, displaced):
            return True
        for name, runner, wait in self._busy_waits(ticket, best, ahead, now):
            if waited + wait < MOVE_COST * (cost - self._reading_once_free(ticket, name, runner)):
                ticket.waits_for = name
                return True
        return False

    def _busy_waits(self, ticket: Ticket, best: Placement, ahead: list[Ticket],
                    now: float) -> Iterator[tuple[str, Runner, float]]:
        """Each busy server other than ``best`` that has ``ticket``'s model loaded, its runner, and the wait expected
        there for a slot, behind those of ``ahead`` already waiting for it."""
        for name, server, runner in self._loaded_for(ticket):
            if name == best.server or server.free_slots(ticket.model) > 0:
                continue
            queued = sum(1 for t in ahead if t.waits_for == name)
            yield name, runner, self._warm_wait(ticket, [server], queued, now)

    def _sooner_elsewhere(self, ticket: Ticket, best: Placement, pick: Pick | None, ahead: list[Ticket],
                          now: float) -> bool:
        """Whether a question, whose free slot on ``best`` is behind more than ``QUESTION_READ_WAIT`` of other slots'
        reading, is answered sooner by waiting for a busy server's slot: one whose running turns are expected to
        end, behind the questions already waiting for it, before that reading would be done. As the reading goes
        on, what is left of it shrinks, and a slot that does not free when expected is expected later: the
        question goes to ``best`` once that is sooner."""
        here = 0.0 if pick is None else self._reading_ahead(ticket.model, best.server, pick.slot, now)
        if here <= QUESTION_READ_WAIT:
            return False
        for name, _, wait in self._busy_waits(ticket, best, ahead, now):
            if wait < here:
                ticket.waits_for = name
                return True
        return False

    def _held_behind_loans(self, ticket: Ticket, cost: float) -> bool:
        """Whether a server that holds more of ``ticket``'s prompt than ``cost`` says is full only for the slots it
        lent a worker, not for what runs there. Its loans come back within a round trip once anything waits
        (``lending.recall``), so even a question waits for them: a slot idle in the engine is not busy."""
        for name, server, runner in self._loaded_for(ticket):
            if not runner.lent or runner.reserved_by is not None or runner.running >= server.slots_of(ticket.model):
                continue
            if cost - self._reading_on(ticket, name, runner) > self.estimates.prefill_seconds(ticket.model, name,
                                                                                             NEGLIGIBLE):
                ticket.waits_for = name
                return True
        return False

    def _loaded_for(self, ticket: Ticket) -> Iterator[tuple[str, ServerSlots, Runner]]:
        """Each server ``ticket`` may run on that has its model loaded, and that model's runner there."""
        for name in ticket.candidates:
            server = self.servers.get(name)
            runner = server.runners.get(ticket.model) if server is not None else None
            if runner is not None:
                yield name, server, runner

    def _reading_once_free(self, ticket: Ticket, name: str, runner: Runner) -> float:
        """Seconds of reading ``ticket``'s prompt costs on busy server ``name`` in the slot expected to free first
        there: what its runner holds of it may not be there to read then. A conversation llama-server keeps only in
        RAM is dropped from it, to make room for the prompt of the slot it takes, before it could be loaded; a turn
        waiting for it would wait, and then read it all again."""
        slots = runner.caches.running_slots()  # this runner's own: on server ``name``, of the ticket's model
        first = min((self.running[held] for held in slots if held in self.running), key=self._ends_at, default=None)
        if first is None:
            return self._reading_on(ticket, name, runner)
        pick = runner.caches.pick(ticket.prefix, self._tenant(ticket), freed=slots[first.ticket.id])
        return self._prompt_cost(ticket, name, pick) if pick is not None else self._reading_on(ticket, name, runner)

    def _reading_on(self, ticket: Ticket, name: str, runner: Runner) -> float:
        """Seconds of reading ``ticket``'s prompt costs on server ``name``: the part its runner holds nowhere."""
        held = runner.caches.holds(ticket.prefix, self._tenant(ticket))
        return self.estimates.prefill_seconds(ticket.model, name, runner.caches.readable(ticket.prefix) - held)

    def _confirm(self, run: Running, read: PromptRead) -> None:
        """Learn from what an answer says it read: the prefill rate, the tokens an estimate stands for, and whether
        the mirror was right; a predicted hit that did not happen drops what the mirror wrongly held."""
        ticket, server = run.ticket, run.placement.server
        estimate = prompt_tokens(ticket.prefix)
        if read.cached is not None:
            self.estimates.prefilled(ticket.model, server, read.tokens - read.cached, read.seconds)
        elif not run.cached:  # an Ollama before 0.33, and a prompt the mirror expected read whole
            self.estimates.prefilled(ticket.model, server, read.tokens, read.seconds)
        runner = self.servers[server].runners.get(ticket.model)
        if not estimate or (runner is not None and not runner.caches.fits(ticket.prefix)):
            return  # Ollama cut the prompt to its context: its count is of another prompt
        self.estimates.counted(ticket.model, estimate, read.tokens)
        cached = read.cached
        if cached is None:  # what it read again, from the time it took less what other slots read in it
            reread = self.estimates.reread(ticket.model, server, read.seconds)
            if reread is None:
                return
            beside = 0.0 if runner is None else read_beside(runner.reads, ticket.id, run.started, read.seconds,
                                                             self.estimates.prefill_rate(ticket.model, server))
            cached = max(0, read.tokens - max(0, round(reread - beside)))
        predicted = self.predicted_cached(run)
        if self.hits.note(server, ticket.model, read.tokens, predicted, cached) and runner is not None:
            runner.caches.forget(ticket.prefix)

    def predicted_cached(self, run: Running) -> int:
        """The prompt tokens the mirror expects ``run``'s server to read from cache, in Ollama's tokens."""
        return round(run.cached * self.estimates.scale(run.ticket.model))


def _reads_foreign(pick: Pick | None) -> bool:
    """Whether a prompt placed by ``pick`` reads from cache more of another tenant's prompt than any two share."""
    return pick is not None and pick.foreign and pick.cached > NEGLIGIBLE
