import pytest
from flask import Flask, request

from ollama_proxy.app import trust_proxies


@pytest.mark.parametrize("hops, forwarded_for, client", [
    (0, None, "192.0.2.1"),
    (0, "203.0.113.9", "192.0.2.1"),  # no proxy in front: the header is the client's own lie
    (1, None, "192.0.2.1"),
    (1, "203.0.113.9", "203.0.113.9"),
    (1, "203.0.113.9, 198.51.100.7", "198.51.100.7"),  # the client wrote the first, nginx added the last
    (2, "203.0.113.9, 198.51.100.7", "203.0.113.9"),
    (2, "198.51.100.7", "192.0.2.1"),  # fewer hops than trusted: none is believed
])
def test_the_client_address_comes_from_trusted_hops_only(hops, forwarded_for, client):
    app = Flask(__name__)
    app.add_url_rule("/", "address", lambda: request.remote_addr)
    trust_proxies(app, hops)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    answer = app.test_client().get("/", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert answer.get_data(as_text=True) == client
