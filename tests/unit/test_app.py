import pytest
from flask import Flask, request

from ollama_proxy.app import register_error_handlers, trust_proxies
from ollama_proxy.store import DatabaseError, ValueRefused


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


def _failing_app(error: Exception) -> Flask:
    app = Flask(__name__)

    def fail():
        raise error
    for path in ("/api/chat", "/v1/chat/completions"):
        app.add_url_rule(path, path, fail, methods=["POST"])
    register_error_handlers(app)
    return app


def test_a_store_failure_no_layer_answered_is_a_503_in_the_surfaces_shape(caplog):
    app = _failing_app(DatabaseError("(psycopg.OperationalError) ... [SQL: SELECT secret]", "OperationalError: gone"))
    native = app.test_client().post("/api/chat")
    openai = app.test_client().post("/v1/chat/completions")
    assert native.status_code == openai.status_code == 503
    assert native.json == {"error": "the store cannot be reached; try again shortly"}
    assert openai.json["error"]["message"] == "the store cannot be reached; try again shortly"
    assert "OperationalError: gone" in caplog.text and "SELECT" not in caplog.text and "Traceback" not in caplog.text


def test_a_value_the_store_refused_is_the_proxys_own_fault():
    answer = _failing_app(ValueRefused("too long", "DataError: too long")).test_client().post("/api/chat")
    assert answer.status_code == 500
