"""The messages between the workers and the arbiter: one JSON object a line (pure, no I/O).

worker ─► arbiter   submit {ticket}, end {id, load_seconds}, cancel {id}, status {id},
                    running {ticket, server, start, options, evict} (to a new arbiter),
                    join {} (this worker borrows slots), start {ticket, loan, server, options}, returned {loan},
                    ran {principal, weight, class, model, server, requests, seconds} (requests of one
                    principal and model that started and ended on a loan before they were told of)
arbiter ─► worker   grant {id, server, start, options, evict, waited},
                    refused {id, status, message, retry_after}, expired {id},
                    status {id, status: the scheduler's state (snapshot.py)},
                    lend {loan, server, model, options, slots}, recall {loan}
"""

from __future__ import annotations

import json

from ollama_proxy.errors import Overloaded, ProxyError, RateLimited
from ollama_proxy.scheduler.core import Grant, Loan, Ticket
from ollama_proxy.scheduler.fairness import Share
from ollama_proxy.scheduler.servers import Placement, Start


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    return json.loads(line)


def submit(ticket: Ticket) -> dict:
    share = ticket.share
    return {"op": "submit", "id": ticket.id, "principal": share.principal, "weight": share.weight,
            "class": share.klass, "model": ticket.model, "candidates": list(ticket.candidates),
            "asked": ticket.asked, "enforced": sorted(ticket.enforced)}


def ticket_of(message: dict) -> Ticket:
    return Ticket(message["id"], share_of(message), message["model"], tuple(message["candidates"]),
                  dict(message["asked"]), frozenset(message["enforced"]))


def grant(granted: Grant) -> dict:
    placement = granted.placement
    return {"op": "grant", "id": granted.ticket, "server": placement.server, "start": placement.start.value,
            "options": placement.options, "evict": placement.evict, "waited": granted.waited}


def grant_of(message: dict) -> Grant:
    placement = Placement(message["server"], Start(message["start"]), message["options"], message["evict"])
    return Grant(message["id"], placement, message["waited"])


def lend(loan: Loan) -> dict:
    return {"op": "lend", "id": "", "loan": loan.id, "server": loan.server, "model": loan.model,
            "options": loan.options, "slots": loan.slots}


def start(ticket: Ticket, loan: str, placement: Placement) -> dict:
    message = submit(ticket)
    message.update(op="start", loan=loan, server=placement.server, options=placement.options)
    return message


def ran(share: Share, model: str, server: str, requests: int, seconds: float) -> dict:
    return {"op": "ran", "id": "", "principal": share.principal, "weight": share.weight, "class": share.klass,
            "model": model, "server": server, "requests": requests, "seconds": seconds}


def share_of(message: dict) -> Share:
    return Share(message["principal"], float(message["weight"]), message["class"])


def status(question_id: str, state: dict) -> dict:
    return {"op": "status", "id": question_id, "status": state}


def refused(ticket_id: str, error: ProxyError) -> dict:
    return {"op": "refused", "id": ticket_id, "status": error.status, "message": error.message,
            "retry_after": error.retry_after}


def error_of(message: dict) -> ProxyError:
    if message["status"] == 429:
        return RateLimited(message["message"], retry_after=message["retry_after"])
    error = Overloaded(message["message"])
    error.retry_after = message["retry_after"]
    return error
