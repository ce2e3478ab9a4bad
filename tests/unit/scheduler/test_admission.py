from flask import Flask

from ollama_proxy.access.auth import Principal
from ollama_proxy.scheduler.admission import ANONYMOUS, current_requester, end_user


def test_a_trusted_front_end_names_the_user_each_gets_a_share_of_its_own():
    app = Flask(__name__)
    webui = Principal("webui", "generate", weight=2, trusted_frontend=True)
    other = Principal("script", "generate", klass="batch")
    headers = {"X-OpenWebUI-User-Id": " u-42 ", "X-OpenWebUI-User-Name": "Ann"}
    with app.test_request_context(headers=headers):
        trusted = current_requester(webui, {})
        untrusted = current_requester(other, {"num_ctx": 8192, "temperature": 0})
    assert (trusted.share.principal, trusted.share.weight) == ("webui/u-42", 2)
    assert (untrusted.share.principal, untrusted.share.klass) == ("script", "batch")  # its headers are ignored
    assert untrusted.enforced == frozenset({"num_ctx"})
    with app.test_request_context():
        assert current_requester(webui, {}).share.principal == "webui"  # no user named: the key itself
        assert current_requester(None, {}).share == ANONYMOUS


def test_an_end_user_is_read_from_the_first_header_that_names_one_and_kept_short():
    assert end_user({"X-OpenWebUI-User-Email": "a@b.lan"}) == "a@b.lan"
    assert end_user({"X-OpenWebUI-User-Id": "  ", "X-OpenWebUI-User-Name": "x" * 500}) == "x" * 128
    assert end_user({}) is None
