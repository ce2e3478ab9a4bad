"""A request behind another in turn that starts first, in its place (mixed into ``core.Scheduler``).

When a slot frees, a request expected to hold a slot much longer (``LONGER`` times) than the one whose turn
it is may start first, if every request it passes is still expected to start within ``yield_within``
seconds, on slots about to free. Long answers then start at the moments slots free rather than all together
after a burst of short ones, so they do not end together either, and a slot frees every so often instead of
all of them once an answer; ``pacing`` keeps them apart. It goes only where its own placement would send it
in its turn: giving way lets no request past the holds and the cache placement that apply to it.
"""

from __future__ import annotations

import heapq

from ollama_proxy.scheduler.decisions.pacing import LONGER
from ollama_proxy.scheduler.decisions.servers import Placement, Start
from ollama_proxy.scheduler.decisions.tickets import Ticket


class GivingWay:
    """The scheduler's one exception to its order (reads ``core.Scheduler``'s state)."""

    def _yield_to(self, turn: list[Ticket], position: int, placement: Placement,
                  now: float) -> tuple[Ticket, Placement] | None:
        """A request behind ``turn[position]`` to start in its place on its warm slot, if one should, and how.

        The first one behind, of another principal and for the same model, expected to hold a slot at
        least ``LONGER`` times as long; if it may run on the slot, and the requests it passes are all
        still expected to start within ``yield_within`` seconds of when they first gave way (on the
        slots already free and those expected to free, in turn).
        """
        first = turn[position]
        if not self.bounds.yield_within or placement.start is not Start.WARM:
            return None
        longer = LONGER * self._expected(first)
        passed = [first]
        for index, later in enumerate(turn[position + 1:], position + 1):
            if (later.model != first.model or later.share.principal == first.share.principal
                    or self._expected(later) < longer):
                passed.append(later)
                continue
            if placement.server not in later.candidates:
                return None
            fits = self._place(later, turn[:index], now)
            if (fits is None or fits.server != placement.server or fits.start is not Start.WARM
                    or self._leaves_too_little(later, fits, now)):
                return None
            if not self._start_in_time([t for t in passed if t.model == first.model], first, now):
                return None
            for ticket in passed:
                if ticket.yielded_at is None:
                    ticket.yielded_at = now
            return later, fits
        return None

    def _start_in_time(self, passed: list[Ticket], first: Ticket, now: float) -> bool:
        """Whether ``passed``, in turn, would all start within ``yield_within`` of giving way, one slot fewer."""
        servers = [self.servers[name] for name in first.candidates if name in self.servers]
        frees = [max(now, r.started + r.expected) for r in self.running.values()
                 if r.ticket.model == first.model and r.placement.server in first.candidates]
        frees += [now] * (sum(s.free_slots(first.model) for s in servers) - 1)
        heapq.heapify(frees)
        for ticket in passed:
            if not frees:
                return False
            start = heapq.heappop(frees)
            if start - (ticket.yielded_at if ticket.yielded_at is not None else now) > self.bounds.yield_within:
                return False
            heapq.heappush(frees, start + self._expected(ticket))
        return True
