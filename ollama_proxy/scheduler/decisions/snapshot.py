"""Describe what the scheduler holds, as plain data: each server's loaded models and slots, who runs, who waits.

The arbiter answers a ``status`` question with this (JSON-safe), for ``/metrics``
and the admin page; each loaded model lists what its slots hold and what its RAM
prompt cache saved, as the scheduler mirrors them, and ``prompt_cache`` what the
servers' answers said of the mirror (``hits``). Times are durations up to ``now``:
the arbiter's clock means nothing in another process.
"""

from __future__ import annotations

from collections.abc import Iterable

from ollama_proxy.scheduler.decisions.caches import Prompt
from ollama_proxy.scheduler.decisions.fairness import named
from ollama_proxy.scheduler.decisions.servers import Runner, ServerSlots
from ollama_proxy.scheduler.decisions.tickets import Running, Ticket


def snapshot(servers: dict[str, ServerSlots], running: Iterable[Running], queue: list[Ticket], prompt_cache: list[dict],
             now: float) -> dict:
    """Return ``{"servers": [...], "running": [...], "waiting": [...]}``: the servers, the requests running on
    them, ``queue`` (the waiting, in the order they go) and ``prompt_cache`` (what the answers said of the mirror)."""
    running = sorted(running, key=lambda run: run.started)
    return {
        "servers": [_server(state) for state in servers.values()],
        "prompt_cache": prompt_cache,
        "running": [{**_who(run.ticket), "server": run.placement.server, "start": run.placement.start.value,
                     "options": dict(run.placement.options), "running": now - run.started} for run in running],
        "waiting": [{**_who(ticket), "asked": dict(ticket.asked), "waited": now - ticket.enqueued,
                     "servers": [name for name in ticket.candidates if name in servers]}
                    for ticket in queue],
    }


def _server(state: ServerSlots) -> dict:
    spec = state.spec
    return {"name": spec.name, "slots": state.capacity, "busy": state.running, "num_parallel": spec.num_parallel,
            "max_loaded_models": spec.max_loaded_models,
            "models": [_runner(model, runner) for model, runner in sorted(state.runners.items())]}


def _runner(model: str, runner: Runner) -> dict:
    # reserved: it takes no new request until it drains, to be reloaded with larger options;
    # lent: free slots lent to workers while nothing waits (``core.Loan``)
    caches = runner.caches
    slots = [{"where": f"slot {caches.engine_index(index)}", "owner": _owner(slot.prompt), "tokens": slot.tokens,
              "in_use": slot.ticket is not None} for index, slot in enumerate(caches.slots) if slot.prompt is not None]
    saved = [{"where": "RAM", "owner": _owner(prompt), "tokens": prompt.tokens, "in_use": False}
             for prompt in reversed(caches.ram)]
    return {"model": model, "options": dict(runner.options), "busy": runner.running, "slots": runner.slots,
            "lent": runner.lent, "reserved": runner.reserved_by is not None, "prompts": slots + saved}


def _owner(prompt: Prompt) -> str:
    return named(prompt.owner) if prompt.owner else ""


def _who(ticket) -> dict:
    share = ticket.share
    return {"principal": share.who, "class": share.klass, "weight": share.weight,
            "model": ticket.model}
