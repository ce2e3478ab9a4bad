import pytest
from flask import Flask

from ollama_proxy.access.auth import Principal
from ollama_proxy.access.end_users import (
    MAX_END_USER,
    clean,
    from_anthropic,
    from_headers,
    from_openai,
    named_end_user,
    note_end_user,
)
from ollama_proxy.ledger import RECORD_KEY, RequestRecord
from ollama_proxy.store.schema import usage
from tests.actors import TESTER

TRUSTED = Principal("webui", "generate", trusted_frontend=True)
UNTRUSTED = Principal("script", "generate")


def test_an_end_user_is_read_from_the_first_header_that_names_one_and_kept_short():
    assert from_headers({"X-OpenWebUI-User-Email": "a@b.lan"}) == "a@b.lan"
    assert from_headers({"X-OpenWebUI-User-Id": "  ", "X-OpenWebUI-User-Name": "x" * 500}) == "x" * 128
    assert from_headers({}) is None
    assert from_headers({"X-OpenWebUI-User-Id": "u-1", "X-OpenWebUI-User-Email": "a@b.lan"}) == "u-1"


@pytest.mark.parametrize("value, name", [
    ("ann", "ann"),
    ("  ann  ", "ann"),
    ("ann\r\nX-Injected: 1", "annX-Injected: 1"),  # no line of a log or a CSV cell can be broken
    ("a\x00b\x1bc\x7fd\x85e\u2028f", "abcdef"),  # C0, ESC, DEL, C1 and Unicode line separators
    ("lone \ud800 surrogate", "lone  surrogate"),
    ("Zoë 👩‍💻", "Zoë 👩‍💻"),  # letters and emoji (with their joiners) are names too
    ("y" * 127 + " z", "y" * 127),  # cut, then trimmed again
    ("", None), (" \t\n", None), ("\x00", None),
    (42, None), (None, None), ({"id": "u-1", "name": "Ann"}, None), (["ann"], None),
])
def test_clean(value, name):
    assert clean(value) == name


@pytest.mark.parametrize("body, name", [
    ({"model": "m", "user": "ann"}, "ann"),
    ({"model": "m", "user": " "}, None),
    ({"model": "m", "user": {"id": "u-1"}}, None),  # Open WebUI's pipelines send an object: not a name
    ({"model": "m"}, None),
])
def test_from_openai(body, name):
    assert from_openai(body) == name


@pytest.mark.parametrize("body, name", [
    ({"model": "m", "metadata": {"user_id": "ann"}}, "ann"),
    ({"model": "m", "metadata": {"user_id": 7}}, None),
    ({"model": "m", "metadata": "ann"}, None),
    ({"model": "m", "metadata": {}}, None),
    ({"model": "m", "user": "ann"}, None),  # OpenAI's field means nothing to Anthropic's API
])
def test_from_anthropic(body, name):
    assert from_anthropic(body) == name


def test_only_a_trusted_front_end_names_an_end_user_and_its_headers_win_over_the_body():
    headers = {"X-OpenWebUI-User-Id": "u-42"}
    assert named_end_user(TRUSTED, headers, "ann") == "u-42"
    assert named_end_user(TRUSTED, {}, "ann") == "ann"
    assert named_end_user(TRUSTED, {}) is None
    assert named_end_user(UNTRUSTED, headers, "ann") is None
    assert named_end_user(None, headers, "ann") is None


def test_note_end_user_puts_it_on_the_request_record():
    record = RequestRecord("r1", "POST", "/v1/chat/completions", "127.0.0.1", 0.0)
    app = Flask(__name__)
    with app.test_request_context(headers={"X-OpenWebUI-User-Name": "Ann"}, environ_base={RECORD_KEY: record}):
        record.caller = TRUSTED
        note_end_user("ann")
        assert record.end_user == "Ann"
        record.caller = UNTRUSTED
        note_end_user("ann")
        assert record.end_user is None
    with app.test_request_context():
        note_end_user("ann")  # no record (a request the ledger does not see): nothing to note


def test_the_usage_table_holds_a_whole_end_user():
    assert usage.c.end_user.type.length == MAX_END_USER


SURFACES = [  # path, a body naming "ann" as that surface's clients do
    ("/v1/chat/completions", {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "user": "ann"}),
    ("/v1/completions", {"model": "llama3.2", "prompt": "hi", "user": "ann"}),
    ("/v1/embeddings", {"model": "llama3.2", "input": "hi", "user": "ann"}),
    ("/v1/responses", {"model": "llama3.2", "input": "hi", "user": "ann"}),
    ("/v1/messages", {"model": "llama3.2", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}],
                      "metadata": {"user_id": "ann"}}),
]


@pytest.fixture
def app_with_keys(tmp_path, fake):
    from ollama_proxy.app import create_app
    from ollama_proxy.config import parse_settings
    from ollama_proxy.ledger import add_close_listener
    from ollama_proxy.store import current_store

    app = create_app(parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": f"sqlite:///{tmp_path}/s.db"},
                                     "service": {"base_url": fake.url, "scheduling": False}}, environ={}))
    with app.app_context():
        _, trusted = current_store().create_key("webui", trusted_frontend=True, by=TESTER)
        _, untrusted = current_store().create_key("script", by=TESTER)
    records: list[RequestRecord] = []
    add_close_listener(app, records.append)
    return app, {"trusted": trusted, "untrusted": untrusted}, records


def _sender(app_with_keys):
    """Return send(key, path, body, headers): the finished record of one request made with that key."""
    app, secrets, records = app_with_keys

    def send(key: str, path: str, body: dict, headers: dict | None = None) -> RequestRecord:
        answer = app.test_client().post(path, json=body,
                                        headers={"Authorization": f"Bearer {secrets[key]}", **(headers or {})})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        answer.close()  # hands the record to the close listeners
        return records[-1]
    return send


@pytest.mark.parametrize("path, body", SURFACES, ids=[path for path, _ in SURFACES])
def test_each_surface_notes_the_user_its_body_names_for_a_trusted_key_only(app_with_keys, path, body):
    send = _sender(app_with_keys)
    assert send("trusted", path, body).end_user == "ann"
    assert send("trusted", path, body, {"X-OpenWebUI-User-Id": "u-7"}).end_user == "u-7"
    assert send("untrusted", path, body, {"X-OpenWebUI-User-Id": "u-7"}).end_user is None


def test_the_headers_name_the_user_of_a_native_request_from_a_trusted_key(app_with_keys):
    send = _sender(app_with_keys)
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    headers = {"X-OpenWebUI-User-Email": "ann@lan"}
    assert send("trusted", "/api/chat", body, headers).end_user == "ann@lan"
    assert send("untrusted", "/api/chat", body, headers).end_user is None
