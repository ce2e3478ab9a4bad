"""Describe what the scheduler holds, as plain data: each server's loaded models and slots, who runs, who waits.

The arbiter answers a ``status`` question with this (JSON-safe), for ``/metrics``
and the admin page; each loaded model lists the conversations its slots' prompt
caches hold, as the scheduler mirrors them. Times are durations up to ``now``:
the arbiter's clock means nothing in another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ollama_proxy.scheduler.caches import CacheSlot
from ollama_proxy.scheduler.fairness import named
from ollama_proxy.scheduler.servers import Runner, ServerSlots

if TYPE_CHECKING:
    from ollama_proxy.scheduler.core import Scheduler


def snapshot(scheduler: Scheduler, now: float) -> dict:
    """Return ``{"servers": [...], "running": [...], "waiting": [...]}``, the waiting in the order they go."""
    running = sorted(scheduler.running.values(), key=lambda run: run.started)
    return {
        "servers": [_server(scheduler, state, now) for state in scheduler.servers.values()],
        "running": [{**_who(run.ticket), "server": run.placement.server, "start": run.placement.start.value,
                     "options": dict(run.placement.options), "running": now - run.started} for run in running],
        "waiting": [{**_who(ticket), "asked": dict(ticket.asked), "waited": now - ticket.enqueued,
                     "servers": [name for name in ticket.candidates if name in scheduler.servers]}
                    for ticket in scheduler.queue(now)],
    }


def _server(scheduler: Scheduler, state: ServerSlots, now: float) -> dict:
    spec = state.spec
    return {"name": spec.name, "slots": state.capacity, "busy": state.running, "num_parallel": spec.num_parallel,
            "max_loaded_models": spec.max_loaded_models,
            "models": [_runner(scheduler, model, runner, spec.num_parallel, now)
                       for model, runner in sorted(state.runners.items())]}


def _runner(scheduler: Scheduler, model: str, runner: Runner, slots: int, now: float) -> dict:
    # reserved: it takes no new request until it drains, to be reloaded with larger options;
    # lent: free slots lent to workers while nothing waits (``core.Loan``)
    return {"model": model, "options": dict(runner.options), "busy": runner.running, "slots": slots,
            "lent": runner.lent, "reserved": runner.reserved_by is not None,
            "conversations": [_conversation(scheduler, slot, now) for slot in runner.caches.held()]}


def _conversation(scheduler: Scheduler, slot: CacheSlot, now: float) -> dict:
    """Describe the prompt a slot's cache holds: whose, its tokens, in use or ended how long ago, and whether held.

    Held: kept for its owner's next turn, as the scheduler decides (``Scheduler._held``).
    """
    in_use = slot.ticket is not None
    return {"owner": named(slot.owner) if slot.owner else "", "tokens": slot.tokens, "in_use": in_use,
            "ended": now - slot.ended if not in_use and slot.ended >= 0 else None,
            "held": not in_use and scheduler._held(slot, now)}


def _who(ticket) -> dict:
    share = ticket.share
    return {"principal": share.who, "class": share.klass, "weight": share.weight,
            "model": ticket.model}
