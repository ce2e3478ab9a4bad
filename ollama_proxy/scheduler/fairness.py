"""Weighted fair share of slot-time between principals, interactive ahead of batch.

Each principal has a virtual time: the slot-seconds its requests used, divided
by its weight. The next request comes from the waiting principal with the least
virtual time, so over any busy stretch each principal gets slot-time in
proportion to its weight, however many requests it keeps queued. A request is
charged its expected slot-time when it starts and corrected by what it really
used when it ends.

A principal that becomes active (something waiting or running again) never
starts below what the least-served active one has had: idling banks no credit.
It keeps what it had above that for ``memory`` seconds of idling: an agent
that thinks a second between turns, each turn holding a slot for seconds, is
not forgiven its last turn every time, or it would go ahead of the people who
waited all along, turn after turn. After ``memory`` seconds it comes back level.

Classes come first: a waiting ``interactive`` request goes ahead of every
``batch`` one, except a batch request that has waited longer than the ageing
bound, which then counts as interactive, so batch work never starves.
"""

from __future__ import annotations

from dataclasses import dataclass

INTERACTIVE = "interactive"
BATCH = "batch"
CLASSES = (INTERACTIVE, BATCH)
MAX_WEIGHT = 1000.0  # the largest weight a key or token may have


@dataclass(frozen=True)
class Share:
    """Who a request is charged to, and how much of the GPUs that principal is due."""

    principal: str
    weight: float = 1.0
    klass: str = INTERACTIVE


IDLE_KEPT = 10_000  # idle principals whose virtual time is remembered; the longest idle is forgotten first


class FairShare:
    """The virtual time of every active principal, and of those idle for less than ``memory`` seconds."""

    def __init__(self, memory: float = 0.0) -> None:
        self.memory = memory
        self._vtime: dict[str, float] = {}
        self._idle_since: dict[str, float] = {}  # in the order they went idle

    def vtime(self, principal: str) -> float:
        return self._vtime.get(principal, 0.0)

    def activate(self, principal: str, served: dict[str, float], now: float) -> None:
        """Count a principal that had nothing waiting or running in again, never below the least-served active one.

        ``served`` maps each active principal to its virtual time for the slot-time
        it has had so far. A principal idle for less than ``memory`` keeps its own if
        that is more; one idle longer, or never seen, starts level.
        """
        self._forget_idle(now)
        floor = min(served.values(), default=0.0)
        kept = self._idle_since.pop(principal, None) is not None
        self._vtime[principal] = max(floor, self._vtime[principal]) if kept else floor

    def idle(self, principal: str, now: float) -> None:
        """The principal has nothing waiting or running now."""
        self._idle_since.pop(principal, None)
        self._idle_since[principal] = now
        self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        while self._idle_since:
            principal, since = next(iter(self._idle_since.items()))
            if now - since < self.memory and len(self._idle_since) <= IDLE_KEPT:
                return
            del self._idle_since[principal]
            self._vtime.pop(principal, None)

    def charge(self, share: Share, slot_seconds: float) -> None:
        """Count slot-seconds (negative: give back an overestimate) against the principal."""
        self._vtime[share.principal] = self.vtime(share.principal) + slot_seconds / share.weight


def class_rank(share: Share, waited: float, ageing: float) -> int:
    """0 for interactive (or batch that waited past ``ageing`` seconds), 1 for batch."""
    return 0 if share.klass != BATCH or waited >= ageing else 1
