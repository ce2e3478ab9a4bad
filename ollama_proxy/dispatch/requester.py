"""Take who asks for a slot from the current request: its share of the GPUs, its client, its record, its budgets."""

from __future__ import annotations

from flask import has_request_context, request

from ollama_proxy.access.budgets import check_at_grant
from ollama_proxy.ledger import current_record
from ollama_proxy.scheduler.decisions.options import RELOAD_OPTIONS
from ollama_proxy.scheduler.transport.admission import Requester, share_of


def current_requester(enforce: dict) -> Requester:
    """Describe the current request's caller, and which reload options its model's ``enforce`` override sets."""
    if not has_request_context():
        return Requester()
    record = current_record()
    principal, end_user = (None, None) if record is None else (record.caller, record.end_user)
    return Requester(share_of(principal, end_user), request.environ, record,
                     frozenset(name for name in enforce if name in RELOAD_OPTIONS), check_at_grant())
