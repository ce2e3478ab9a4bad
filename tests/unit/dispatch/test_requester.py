"""Who asks for a slot, as the current request says."""

from flask import Flask

from ollama_proxy.access.auth import Principal
from ollama_proxy.access.end_users import note_end_user
from ollama_proxy.dispatch.requester import current_requester
from ollama_proxy.ledger import RECORD_KEY, RequestRecord
from ollama_proxy.scheduler.transport.admission import ANONYMOUS

WEBUI = Principal("webui", "generate", weight=2, trusted_frontend=True)
SCRIPT = Principal("script", "generate", klass="batch")


def requested(principal, enforce: dict, headers: dict | None = None, named_in_body: str | None = None):
    """Ask for the requester of a request as the app has it: a ledger record, its end user noted."""
    record = RequestRecord("r1", "POST", "/v1/chat/completions", "127.0.0.1", 0.0, caller=principal)
    with Flask(__name__).test_request_context(headers=headers or {}, environ_base={RECORD_KEY: record}):
        note_end_user(named_in_body)
        return current_requester(enforce)


def test_a_trusted_front_end_names_the_user_each_gets_a_share_of_its_own():
    headers = {"X-OpenWebUI-User-Id": " u-42 ", "X-OpenWebUI-User-Name": "Ann"}
    trusted = requested(WEBUI, {}, headers)
    untrusted = requested(SCRIPT, {"num_ctx": 8192, "temperature": 0}, headers)
    assert (trusted.share.who, trusted.share.weight) == ("webui/u-42", 2)
    assert (untrusted.share.who, untrusted.share.klass) == ("script", "batch")  # its headers are ignored
    assert untrusted.enforced == frozenset({"num_ctx"})
    assert requested(WEBUI, {}).share.who == "webui"  # no user named: the key itself
    assert requested(None, {}).share == ANONYMOUS


def test_the_user_a_body_names_gets_a_share_from_a_trusted_front_end_only_and_the_headers_win():
    assert requested(WEBUI, {}, named_in_body="ann").share.who == "webui/ann"
    assert requested(WEBUI, {}, {"X-OpenWebUI-User-Email": "bob@lan"}, "ann").share.who == "webui/bob@lan"
    assert requested(SCRIPT, {}, named_in_body="ann").share.who == "script"


def test_a_record_naming_a_user_for_an_untrusted_key_names_no_share():
    record = RequestRecord("r1", "POST", "/api/chat", "127.0.0.1", 0.0, end_user="ann")
    with Flask(__name__).test_request_context(environ_base={RECORD_KEY: record}):
        record.caller = SCRIPT
        assert current_requester({}).share.who == "script"
        record.caller = WEBUI
        assert current_requester({}).share.who == "webui/ann"
