"""The messages between the workers and the arbiter: one JSON object a line (pure, no I/O).

worker ─► arbiter   submit {ticket}, end {id, load_seconds, prompt}, cancel {id}, status {id},
                    sync {running: [{ticket, server, start, options}], waiting: [{ticket}]}: all this
                        worker holds and waits for, said to a new arbiter (or again, after a lost line),
                    join {} (this worker borrows slots), start {ticket, loan, server, options}, returned {loan},
                    ran {principal, weight, class, model, server, requests, seconds} (requests of one
                    principal and model that started and ended on a loan before they were told of)
A ticket's or ran's share: principal (an id: key:12, token:bob), name (as people read it), weight,
class, and end_user, team (an id: team:3) and team_weight where it has them.
arbiter ─► worker   grant {id, server, start, options, evict, waited},
                    refused {id, status, message, retry_after}, expired {id, retry_after},
                    status {id, status: the scheduler's state (snapshot.py)},
                    lend {loan, server, model, options, slots}, recall {loan}

A ticket carries the servers it may run on with their capacity (``servers``), so an arbiter
built from another configuration (a worker of before a reload, another instance sharing Redis)
learns them. Reading a message checks it: one that is not what its ``op`` says raises
``BadMessage``, and is dropped by whoever reads it, never the line it came on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Protocol

from ollama_proxy.errors import Overloaded, ProxyError, RateLimited
from ollama_proxy.scheduler.decisions import prefix
from ollama_proxy.scheduler.decisions.fairness import CLASSES, INTERACTIVE, Share
from ollama_proxy.scheduler.decisions.servers import Placement, ServerSpec, Start
from ollama_proxy.scheduler.decisions.tickets import Grant, Loan, PromptRead, Ticket


class Link(Protocol):
    """A worker's line to the arbiter; broken links raise OSError, and their messages end."""

    def send(self, message: dict) -> None:
        """Queue ``message`` to go out in order; never yield (the client says its state atomically)."""

    def messages(self) -> Iterator[dict]: ...

    def close(self) -> None: ...


OLDER_PROMPT_BELOW = 1024  # an older arbiter's loan served prompts shorter than this, its workers decided


class BadMessage(ValueError):
    """A message that is not what its ``op`` says: dropped, and said once in the log."""


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise BadMessage("not an object with an op")
    message.setdefault("id", "")
    return message


def submit(ticket: Ticket, specs: Iterable[ServerSpec] = ()) -> dict:
    message = {"op": "submit", "id": ticket.id, **_share(ticket.share), "model": ticket.model,
               "candidates": list(ticket.candidates), "asked": ticket.asked, "enforced": sorted(ticket.enforced)}
    if ticket.prefix:
        message["prefix"] = prefix.encode(ticket.prefix)
    if ticket.embeds:
        message["embeds"] = True
    if specs:
        message["servers"] = [[s.name, s.num_parallel, s.max_loaded_models, s.max_concurrent, s.prompt_cache_mib,
                               [list(pair) for pair in s.model_parallel]] for s in specs]
    return message


def ticket_of(message: dict) -> Ticket:
    try:
        candidates, asked, enforced = message["candidates"], message["asked"], message["enforced"]
        if not (_strings(candidates) and isinstance(asked, dict) and _strings(enforced)
                and isinstance(message["id"], str) and isinstance(message["model"], str)):
            raise BadMessage(f"a ticket with fields of the wrong types: {_head(message)}")
        return Ticket(message["id"], share_of(message), message["model"], tuple(candidates), dict(asked),
                      frozenset(enforced), prefix=_prefix_of(message), embeds=message.get("embeds") is True)
    except KeyError as missing:
        raise BadMessage(f"a ticket without {missing}: {_head(message)}") from None


def _prefix_of(message: dict) -> prefix.Chain:
    try:
        return prefix.decode(message.get("prefix"))
    except ValueError as exc:
        raise BadMessage(f"a ticket whose prefix is not one ({exc}): {_head(message)}") from None


def end(ticket_id: str, load_seconds: float | None, read: PromptRead | None) -> dict:
    message = {"op": "end", "id": ticket_id, "load_seconds": load_seconds}
    if read is not None:
        message["prompt"] = [read.tokens, read.cached, read.seconds]
    return message


def read_of(message: dict) -> PromptRead | None:
    """What an ``end``'s answer said of its prompt: tokens, those cached (or null), seconds (malformed: not said)."""
    value = message.get("prompt")
    if not (isinstance(value, list) and len(value) == 3):
        return None
    tokens, cached, seconds = value
    if (_count(tokens) and (cached is None or _count(cached) and cached <= tokens)
            and isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < 1e6):
        return PromptRead(tokens, cached, float(seconds))
    return None


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def specs_of(message: dict) -> list[ServerSpec]:
    """The servers a ticket names with their capacity (none: an older worker's message)."""
    try:
        return [ServerSpec(str(name), int(parallel), int(loaded), None if cap is None else int(cap), *_cache(rest))
                for name, parallel, loaded, cap, *rest in message.get("servers") or ()]
    except (TypeError, ValueError):
        raise BadMessage(f"servers that are not [name, num_parallel, max_loaded_models, max_concurrent, "
                         f"prompt_cache_mib, model_parallel]: {_head(message)}") from None


def _cache(rest: list) -> tuple:
    """The prompt cache's size and the per-model slots of a server's spec (an older worker's: the defaults)."""
    if len(rest) != 2 or type(rest[0]) is not int:
        return ()
    return rest[0], tuple((str(model), int(slots)) for model, slots in rest[1])


def running(ticket: Ticket, placement: Placement, specs: Iterable[ServerSpec] = ()) -> dict:
    return {**submit(ticket, specs), "op": "running", "server": placement.server, "start": placement.start.value,
            "options": placement.options}


def placement_of(message: dict) -> Placement:
    try:
        server, options = message["server"], message["options"]
        evict = message.get("evict")
        if not isinstance(server, str) or not isinstance(options, dict) or not isinstance(evict, (str, type(None))):
            raise BadMessage(f"a placement with fields of the wrong types: {_head(message)}")
        return Placement(server, Start(message.get("start", Start.WARM.value)), options, evict)
    except KeyError as missing:
        raise BadMessage(f"a placement without {missing}: {_head(message)}") from None
    except ValueError:
        raise BadMessage(f"a placement of an unknown start: {_head(message)}") from None


def sync(running_now: Iterable[dict], waiting: Iterable[dict]) -> dict:
    """All a worker holds (``running`` messages) and waits for (``submit`` messages), said at once."""
    return {"op": "sync", "id": "", "running": list(running_now), "waiting": list(waiting)}


def grant(granted: Grant) -> dict:
    placement = granted.placement
    message = {"op": "grant", "id": granted.ticket, "server": placement.server, "start": placement.start.value,
               "options": placement.options, "evict": placement.evict, "waited": granted.waited}
    if granted.cached is not None:
        message["cached"] = granted.cached
    return message


def grant_of(message: dict) -> Grant:
    """A grant, with the mirror's estimate of its cached prompt tokens if told (an older arbiter's: none)."""
    cached = message.get("cached")
    return Grant(message["id"], placement_of(message), float(message.get("waited", 0.0)),
                 cached if _count(cached) else None)


def lend(loan: Loan) -> dict:
    return {"op": "lend", "id": "", "loan": loan.id, "server": loan.server, "model": loan.model,
            "options": loan.options, "slots": loan.slots, "classes": list(loan.classes),
            "prompt_below": loan.prompt_below}


def loan_of(message: dict) -> Loan:
    """A lend message's loan, as its worker holds it; an older arbiter's says nothing of what it is for."""
    try:
        loan = Loan(message["loan"], "", message["server"], message["model"], message["options"], int(message["slots"]),
                    classes=tuple(message.get("classes", (INTERACTIVE,))),
                    prompt_below=int(message.get("prompt_below", OLDER_PROMPT_BELOW)))
    except KeyError as missing:
        raise BadMessage(f"a loan without {missing}: {_head(message)}") from None
    except (TypeError, ValueError):
        raise BadMessage(f"a loan whose counts are not numbers: {_head(message)}") from None
    if not (isinstance(loan.server, str) and isinstance(loan.model, str) and isinstance(loan.options, dict)
            and all(klass in CLASSES for klass in loan.classes)):
        raise BadMessage(f"a loan with fields of the wrong types: {_head(message)}")
    return loan


def start(ticket: Ticket, loan: str, placement: Placement, specs: Iterable[ServerSpec] = ()) -> dict:
    message = submit(ticket, specs)
    message.update(op="start", loan=loan, server=placement.server, options=placement.options)
    return message


def ran(share: Share, model: str, server: str, requests: int, seconds: float) -> dict:
    return {"op": "ran", "id": "", **_share(share), "model": model, "server": server, "requests": requests,
            "seconds": seconds}


def ran_of(message: dict) -> tuple[Share, str, str, int, float]:
    """A ``ran`` report's share, model, server, requests and seconds."""
    try:
        report = (share_of(message), message["model"], message["server"], int(message["requests"]),
                  float(message["seconds"]))
    except KeyError as missing:
        raise BadMessage(f"a ran report without {missing}: {_head(message)}") from None
    except (TypeError, ValueError):
        raise BadMessage(f"a ran report whose counts are not numbers: {_head(message)}") from None
    if not isinstance(report[1], str) or not isinstance(report[2], str):
        raise BadMessage(f"a ran report with fields of the wrong types: {_head(message)}")
    return report


def share_of(message: dict) -> Share:
    try:
        principal, klass, weight = message["principal"], message["class"], float(message["weight"])
    except KeyError as missing:
        raise BadMessage(f"a share without {missing}: {_head(message)}") from None
    except (TypeError, ValueError):
        raise BadMessage(f"a weight that is not a number: {_head(message)}") from None
    end_user, team = message.get("end_user"), message.get("team")  # an older worker's message names neither
    name = message.get("name")  # nor the principal's name apart from its id (its principal was the name)
    owner = message.get("owner")  # nor the person who owns the key
    try:
        team_weight = float(message.get("team_weight", 1.0))
    except (TypeError, ValueError):
        raise BadMessage(f"a team weight that is not a number: {_head(message)}") from None
    if (not isinstance(principal, str) or klass not in CLASSES or not weight > 0 or not team_weight > 0
            or not isinstance(end_user, str | None) or not isinstance(team, str | None)
            or not isinstance(name, str | None) or not isinstance(owner, str | None)):
        raise BadMessage(f"a share that is not a principal, a class and a positive weight: {_head(message)}")
    return Share(principal, weight, klass, end_user, team, team_weight, name, owner)


def _share(share: Share) -> dict:
    fields = {"principal": share.principal, "weight": share.weight, "class": share.klass}
    if share.end_user is not None:
        fields["end_user"] = share.end_user
    if share.team is not None:
        fields["team"], fields["team_weight"] = share.team, share.team_weight
    if share.name is not None:
        fields["name"] = share.name
    if share.owner is not None:
        fields["owner"] = share.owner
    return fields


def status(question_id: str, state: dict) -> dict:
    return {"op": "status", "id": question_id, "status": state}


def refused(ticket_id: str, error: ProxyError) -> dict:
    return {"op": "refused", "id": ticket_id, "status": error.status, "message": error.message,
            "retry_after": error.retry_after}


def error_of(message: dict) -> ProxyError:
    if message.get("status") == 429:
        return RateLimited(message.get("message", "too many requests waiting"), retry_after=message.get("retry_after"))
    error = Overloaded(message.get("message", "no slot for this request"))
    error.retry_after = message.get("retry_after")
    return error


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _head(message: dict) -> str:
    """The start of a message, for the log line that says it was dropped."""
    return json.dumps(message)[:200]
