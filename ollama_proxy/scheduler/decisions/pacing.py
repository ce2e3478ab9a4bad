"""Hold a principal's long requests apart while shorter ones use the model (pure, clock given).

A job that keeps every slot of a model busy with answers of one length starts them together whenever
slots free together, and they then end together: a question asked just after waits for a whole answer,
whatever its turn. Started at least ``its expected slot-time / the model's slots`` apart, its answers end
that far apart too, so a slot frees that often and a question waits about that long at most. The job
loses nothing but the moments a slot stands free before its next start may go. Only a principal whose
answers have ended is paced: until then nothing says they are long.

The hold applies only while another interactive principal, whose requests are expected to hold a slot
``LONGER`` times less (or who has had none end yet: a person's first question), has asked for the model
within ``window`` seconds (``scheduling.headroom_window``), and no batch work waits for the model (it would
take the slot held, ahead of its class): a job alone, or beside others as long as it, starts
as fast as slots free. A principal with one request at a time (a person, an agent between turns) is
never held: its next request comes after its last one ended.
"""

from __future__ import annotations

from collections.abc import Callable

from cachetools import LRUCache

from ollama_proxy.scheduler.decisions.estimates import MODELS_KEPT, PRINCIPALS_KEPT

LONGER = 2.0  # how many times longer than another's a request must be expected to run to yield or be paced


class Pacing:
    """When each principal last started a request for a model, and who asked for each model lately."""

    def __init__(self) -> None:
        self._asked: LRUCache[str, dict[str, float]] = LRUCache(MODELS_KEPT)  # model -> principal -> last asked
        self._started: LRUCache[tuple[str, str], float] = LRUCache(PRINCIPALS_KEPT)

    def asked(self, model: str, principal: str, now: float, window: float) -> None:
        """``principal`` asked for ``model`` now."""
        recent = self._asked.get(model)
        if recent is None:
            recent = self._asked[model] = {}
        for stale in [p for p, at in recent.items() if now - at >= window]:
            del recent[stale]
        recent[principal] = now

    def others_asked(self, model: str, principal: str, now: float, window: float) -> bool:
        """Whether a principal other than ``principal`` asked for ``model`` within ``window`` seconds."""
        return any(other != principal and now - at < window for other, at in self._asked.get(model, {}).items())

    def started(self, model: str, principal: str, now: float) -> None:
        self._started[(model, principal)] = now

    def holds(self, model: str, principal: str, expected: float, slots: int, now: float, window: float,
              slot_seconds: Callable[[str], float | None]) -> bool:
        """Whether a request of ``principal`` expected to hold a slot ``expected`` seconds waits for its pace.

        ``slot_seconds``: how long a principal's requests for the model have held their slots (None: none ended).
        """
        last = self._started.get((model, principal))
        if last is None or now - last >= expected / max(1, slots):
            return False
        return any(other != principal and now - at < window
                   and ((shorter := slot_seconds(other)) is None or shorter * LONGER <= expected)
                   for other, at in self._asked.get(model, {}).items())
