import json

import pytest
from flask import Flask, g

from ollama_proxy.access.auth import Principal
from ollama_proxy.access.end_users import note_end_user
from ollama_proxy.observability.ledger import RECORD_KEY, RequestRecord
from ollama_proxy.scheduler import admission
from ollama_proxy.scheduler.admission import ANONYMOUS, Admission, current_requester
from ollama_proxy.scheduler.core import Grant
from ollama_proxy.scheduler.servers import Placement, Start

WEBUI = Principal("webui", "generate", weight=2, trusted_frontend=True)
SCRIPT = Principal("script", "generate", klass="batch")


def requested(principal, enforce: dict, headers: dict | None = None, named_in_body: str | None = None):
    """Ask for the requester of a request as the app has it: a ledger record, its end user noted."""
    record = RequestRecord("r1", "POST", "/v1/chat/completions", "127.0.0.1", 0.0)
    with Flask(__name__).test_request_context(headers=headers or {}, environ_base={RECORD_KEY: record}):
        g.principal = principal
        note_end_user(named_in_body)
        return current_requester(principal, enforce)


def test_a_trusted_front_end_names_the_user_each_gets_a_share_of_its_own():
    headers = {"X-OpenWebUI-User-Id": " u-42 ", "X-OpenWebUI-User-Name": "Ann"}
    trusted = requested(WEBUI, {}, headers)
    untrusted = requested(SCRIPT, {"num_ctx": 8192, "temperature": 0}, headers)
    assert (trusted.share.principal, trusted.share.weight) == ("webui/u-42", 2)
    assert (untrusted.share.principal, untrusted.share.klass) == ("script", "batch")  # its headers are ignored
    assert untrusted.enforced == frozenset({"num_ctx"})
    assert requested(WEBUI, {}).share.principal == "webui"  # no user named: the key itself
    assert requested(None, {}).share == ANONYMOUS


def test_the_user_a_body_names_gets_a_share_from_a_trusted_front_end_only_and_the_headers_win():
    assert requested(WEBUI, {}, named_in_body="ann").share.principal == "webui/ann"
    assert requested(WEBUI, {}, {"X-OpenWebUI-User-Email": "bob@lan"}, "ann").share.principal == "webui/bob@lan"
    assert requested(SCRIPT, {}, named_in_body="ann").share.principal == "script"


def test_a_record_naming_a_user_for_an_untrusted_key_names_no_share():
    record = RequestRecord("r1", "POST", "/api/chat", "127.0.0.1", 0.0, end_user="ann")
    with Flask(__name__).test_request_context(environ_base={RECORD_KEY: record}):
        assert current_requester(SCRIPT, {}).share.principal == "script"
        assert current_requester(WEBUI, {}).share.principal == "webui/ann"


class _GrantingClient:
    """A scheduler client that grants at once, with the reload options the arbiter chose."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement

    def admit(self, ticket, watch=None) -> Grant:
        return Grant(ticket.id, self.placement, 0.0)

    def status(self, timeout: float) -> dict:
        return {"asked within": timeout}


def test_each_grant_is_told_to_the_metrics_with_the_options_asked_and_the_state_is_asked_of_the_client(
        monkeypatch):
    monkeypatch.setattr(admission, "gevent_active", lambda: True)
    client = _GrantingClient(Placement("gpu1", Start.WARM, {"num_ctx": 8192}))
    placed = []
    scheduled = Admission(lambda: client)
    scheduled.placed = lambda placement, asked: placed.append((placement, asked))
    admitted = scheduled.admit(None, "m", ["gpu1"], b'{"model":"m","options":{"num_ctx":2048}}')
    assert placed == [(client.placement, {"num_ctx": 2048})]
    assert b'"num_ctx":8192' in admitted.body
    assert scheduled.status(0.5) == {"asked within": 0.5}


@pytest.mark.parametrize("body", [b'{"model":"m","messages":[{"role":"user","content":"}"}]}',
                                  b'{"model": "m", "keep_alive": "5m"}\n', b'{"model":"m","Options":{"seed":1}}'])
def test_a_body_without_options_is_sent_the_loaded_ones_last_and_otherwise_as_it_came(monkeypatch, body):
    monkeypatch.setattr(admission, "gevent_active", lambda: True)
    client = _GrantingClient(Placement("gpu1", Start.WARM, {"num_ctx": 8192}))
    sent = Admission(lambda: client).admit(None, "m", ["gpu1"], body).body
    assert sent.startswith(body.rstrip()[:-1]) and sent.endswith(b',"options":{"num_ctx":8192}}')
    assert json.loads(sent) == {**json.loads(body), "options": {"num_ctx": 8192}}
