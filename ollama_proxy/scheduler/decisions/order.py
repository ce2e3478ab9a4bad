"""Who of the waiting requests goes first: the scheduler's one seam for its order (``scheduling.order``).

``fair`` (the default): people before batch work (``fairness.class_rank``: a batch request that waited
``batch_ageing`` seconds counts as a person's), then the share that has had the least slot-time
(``fairness.FairShare``). ``arrival``: first come, first served, as Ollama's own queue takes them; the rest
of the scheduler is as it was (placement, the headroom batch work leaves free, the queue's bounds).

An order is told what happens to each request: counted in (``admit``, then ``enter``), started on a slot
(``start``, with the slot-time it is expected to hold), finished (``finish``, with what it held), counted
out (``leave``), or told after it ran on a slot lent to a worker (``ran``). ``turn(share, waited)`` is its
place in the line: the smaller goes first, the earliest of equals.
"""

from __future__ import annotations

from typing import Protocol

from ollama_proxy.scheduler.decisions.fairness import FairShare, Share, class_rank
from ollama_proxy.scheduler.decisions.tickets import Bounds


class Order(Protocol):
    def turn(self, share: Share, waited: float) -> tuple: ...

    def admit(self, share: Share, now: float) -> Share: ...

    def enter(self, share: Share, now: float) -> None: ...

    def leave(self, share: Share, now: float) -> None: ...

    def start(self, share: Share, expected: float) -> None: ...

    def finish(self, share: Share, expected: float, used: float) -> None: ...

    def ran(self, share: Share, seconds: float, now: float) -> None: ...


class FairOrder(FairShare):
    """People first, then the least-served share (the tree of shares ``FairShare`` keeps)."""

    def __init__(self, memory: float, members_kept: int, ageing: float) -> None:
        super().__init__(memory, members_kept)
        self.ageing = ageing

    def turn(self, share: Share, waited: float) -> tuple:
        return class_rank(share, waited, self.ageing), self.rank(share)


class ArrivalOrder:
    """First come, first served: no request's place depends on who sent it or what it ran before."""

    def turn(self, share: Share, waited: float) -> tuple:
        return ()

    def admit(self, share: Share, now: float) -> Share:
        return share

    def enter(self, share: Share, now: float) -> None:
        pass

    def leave(self, share: Share, now: float) -> None:
        pass

    def start(self, share: Share, expected: float) -> None:
        pass

    def finish(self, share: Share, expected: float, used: float) -> None:
        pass

    def ran(self, share: Share, seconds: float, now: float) -> None:
        pass


def order_of(bounds: Bounds) -> Order:
    """The order ``bounds.order`` names."""
    if bounds.order == "arrival":
        return ArrivalOrder()
    return FairOrder(bounds.fair_memory, bounds.max_end_users_per_key, bounds.batch_ageing)
