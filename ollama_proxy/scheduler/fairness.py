"""Weighted fair share of slot-time between principals, interactive ahead of batch.

Each principal has a virtual time: the slot-seconds its requests used, divided
by its weight. The next request comes from the waiting principal with the least
virtual time, so over any busy stretch each principal gets slot-time in
proportion to its weight, however many requests it keeps queued. A principal
that was idle starts level with what the least-served active one has had:
idling banks no credit to spend later, nor debt. A request is charged its expected slot-time when it
starts and corrected by what it really used when it ends.

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


class FairShare:
    """The virtual time of every principal seen."""

    def __init__(self) -> None:
        self._vtime: dict[str, float] = {}

    def vtime(self, principal: str) -> float:
        return self._vtime.get(principal, 0.0)

    def activate(self, principal: str, served: dict[str, float]) -> None:
        """Bring a principal that had nothing waiting or running level with the least-served active one.

        ``served`` maps each active principal to its virtual time for the slot-time
        it has had so far; principals not in it are idle and forgotten.
        """
        self._vtime = {p: v for p, v in self._vtime.items() if p in served}
        self._vtime[principal] = min(served.values(), default=0.0)

    def charge(self, share: Share, slot_seconds: float) -> None:
        """Count slot-seconds (negative: give back an overestimate) against the principal."""
        self._vtime[share.principal] = self.vtime(share.principal) + slot_seconds / share.weight


def class_rank(share: Share, waited: float, ageing: float) -> int:
    """0 for interactive (or batch that waited past ``ageing`` seconds), 1 for batch."""
    return 0 if share.klass != BATCH or waited >= ageing else 1
