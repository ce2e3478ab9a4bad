"""A hostile client with a valid but limited key tries to reach past the access policy.

Every test here drives the real server (gunicorn, gevent workers) over the fake Ollama, which
reads request bodies as Ollama's Go decoder does, and checks that what the upstream runs is
exactly what the policy checked, that every bound holds, and that nothing leaks.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy
from requests.adapters import HTTPAdapter
from werkzeug.security import generate_password_hash

from ollama_proxy.scheduler.decisions.options import reload_options
from tests.actors import TESTER
from tests.e2e.admin_page import ATTEMPTS, PASSWORD, admin_config, csrf_token
from tests.e2e.command import cli, create_key
from tests.e2e.conftest import ALICE, AT_ONCE, GENERATE, MANAGE, SCRAPE, auth, base_config
from tests.e2e.nginx import Nginx
from tests.e2e.server import DEPLOY, ProxyServer, free_port, start_server
from tests.e2e.surfaces import IMAGE_SURFACES, assert_error_shape, image_request
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_provider import PROVIDER_KEY

TIMEOUT = 30
HI = [{"role": "user", "content": "hi"}]


# --- A second model key in another case (smuggled model and options) -------------------------

ENFORCED_CTX = 4096


@pytest.fixture(scope="module")
def policed(fake_server, tmp_path_factory):
    """A proxy whose llama3.2 has an enforced num_ctx and keep_alive, and a key limited to llama3*."""
    config = base_config(fake_server.url)
    config["models"] = {"overrides": {"llama3.2": {"enforce": {"num_ctx": ENFORCED_CTX, "keep_alive": "5m"}}}}
    server = ProxyServer(config, tmp_path_factory.mktemp("policed")).start()
    server.limited = create_key(server, "--name", "llama-only", "--models", "llama3*")
    yield server
    server.stop()


# (path, body with a second model key in another case, where the error names the key)
SMUGGLED_MODEL = [
    ("/api/chat", {"model": "llama3.2", "Model": "qwen3:8b", "messages": HI, "stream": False}),
    ("/api/generate", {"model": "llama3.2", "MODEL": "qwen3:8b", "prompt": "hi", "stream": False}),
    ("/api/show", {"model": "llama3.2", "Model": "qwen3:8b"}),
    ("/api/embed", {"model": "llama3.2", "Model": "all-minilm", "input": "hi"}),
    ("/v1/chat/completions", {"model": "llama3.2", "Model": "qwen3:8b", "messages": HI}),
    ("/v1/responses", {"model": "llama3.2", "Model": "qwen3:8b", "input": "hi"}),
    ("/v1/embeddings", {"model": "llama3.2", "Model": "all-minilm", "input": "hi"}),
    ("/v1/messages", {"model": "llama3.2", "Model": "qwen3:8b", "max_tokens": 16, "messages": HI}),
    ("/anthropic/v1/messages", {"model": "llama3.2", "Model": "qwen3:8b", "max_tokens": 16, "messages": HI}),
]


def _error_message(answer: requests.Response) -> str:
    error = answer.json()["error"]
    return error if isinstance(error, str) else error["message"]


@pytest.mark.parametrize("path, body", SMUGGLED_MODEL, ids=[path for path, _ in SMUGGLED_MODEL])
def test_a_second_model_key_in_another_case_is_refused_and_never_sent(policed, fake, path, body):
    sent_before = len(fake.requests)
    answer = requests.post(policed.url + path, json=body, headers=auth(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    smuggled = next(key for key in body if key != "model" and key.lower() == "model")
    assert smuggled in _error_message(answer) and "'model'" in _error_message(answer)
    assert fake.requests[sent_before:] == []  # Ollama ran nothing


@pytest.mark.parametrize("smuggled", [
    {"Options": {"num_ctx": 131072}},
    {"option\u017f": {"num_ctx": 131072}},  # the long s: Go folds it to S
    {"Keep_Alive": -1},
    {"\u212aeep_alive": -1},  # the Kelvin sign: Go folds it to K
], ids=["Options", "long-s options", "Keep_Alive", "Kelvin keep_alive"])
def test_an_enforced_override_cannot_be_escaped_by_a_key_in_another_case(policed, fake, smuggled):
    body = {"model": "llama3.2", "messages": HI, "stream": False,
            "options": {"num_ctx": ENFORCED_CTX}, "keep_alive": "5m", **smuggled}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=auth(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert next(iter(smuggled)) in _error_message(answer)
    assert fake.calls("/api/chat") == []


def test_what_ollama_runs_is_what_the_policy_checked(policed, fake):
    # The same request spelt correctly is served, with the enforced values as Ollama reads them.
    body = {"model": "llama3.2", "messages": HI, "stream": False, "options": {"num_ctx": 131072},
            "keep_alive": -1}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=auth(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    ran = fake.last("/api/chat").json  # read as Ollama's Go decoder reads it
    assert ran["model"] == "llama3.2"
    assert ran["options"]["num_ctx"] == ENFORCED_CTX and ran["keep_alive"] == "5m"
    assert answer.json()["model"] == "llama3.2"


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "cloud/fake-chat", "Model": "gpt-5", "messages": HI}),
    ("/v1/chat/completions", {"model": "cloud/fake-chat", "messages": HI, "stream": True, "Stream": False}),
    ("/api/chat", {"model": "cloud:fake-chat", "MODEL": "gpt-5", "messages": HI, "stream": False}),
])
def test_a_key_a_go_provider_would_read_as_another_field_is_refused(cloud_proxy, provider, path, body):
    answer = requests.post(cloud_proxy.url + path, json=body, headers=auth(), timeout=TIMEOUT)
    assert answer.status_code == 400 and "case-sensitive" in _error_message(answer)
    assert provider.requests == []  # the provider, which reads keys as Go does, was sent nothing


def test_a_message_field_in_another_case_is_refused(policed, fake):
    body = {"model": "llama3.2", "stream": False,
            "messages": [{"role": "user", "content": "hi", "Content": "something else"}]}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=auth(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400 and "messages[0].Content" in _error_message(answer)
    assert fake.calls("/api/chat") == []


# --- Options given twice, or spelt otherwise: the scheduler must read what Ollama runs ---------

@pytest.fixture(scope="module")
def scheduled_policed(tmp_path_factory):
    """A proxy scheduling its one server, whose llama3.2 has an enforced num_ctx, over a fake in slot mode."""
    gpu = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    config = base_config(gpu.url, scheduling=True, num_parallel=1, max_loaded_models=1)
    config["models"] = {"overrides": {"llama3.2": {"enforce": {"num_ctx": ENFORCED_CTX}}}}
    server = ProxyServer(config, tmp_path_factory.mktemp("scheduled-policed"), workers=1).start()
    server.gpu = gpu
    yield server
    server.stop()
    gpu.stop()


def _chat_bytes(proxy, options: bytes) -> requests.Response:
    """Send a chat whose options part is written by hand (a key given twice cannot be written as a dict)."""
    data = b'{"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": false, ' + options + b"}"
    return requests.post(proxy.url + "/api/chat", data=data, headers={**auth(), "Content-Type": "application/json"},
                         timeout=TIMEOUT)


@pytest.mark.parametrize("options, key", [
    (b'"options": {"num_gpu": 0, "num_ctx": 131072}, "options": {"num_ctx": 4096}', "options"),
    (b'"options": {"num_gpu": 0, "num_ctx": 131072}, "\\u006fptions": {"num_ctx": 4096}', "options"),
    (b'"\\u006fptions": {"num_gpu": 0, "num_ctx": 131072}, "options": {"num_ctx": 4096}', "options"),
    (b'"OPTIONS": {"num_gpu": 0}, "OPTIONS": {"num_ctx": 4096}', "OPTIONS"),
    (b'"options": {"num_ctx": 4096}, "Options": {"num_gpu": 0}', "Options"),
], ids=["twice", "then-escaped", "escaped-then-plain", "capitals-twice", "then-capital"])
def test_options_given_twice_are_refused_and_never_reach_ollama(scheduled_policed, options, key):
    gpu = scheduled_policed.gpu
    gpu.reset()
    answer = _chat_bytes(scheduled_policed, options)
    assert answer.status_code == 400, f"{answer.status_code}; Ollama ran {[r.json for r in gpu.calls('/api/chat')]}"
    assert key in _error_message(answer)
    assert gpu.calls("/api/chat") == []


@pytest.mark.parametrize("options", [
    b'"\\u006fptions": {"num_ctx": 131072}',
    b'"options": {"num\\u005fctx": 131072}',
    b'"options": {"num_ctx": 131072, "NUM_CTX": 131072}',
    b'"options": {"num_ctx": 4096, "num_ctx": 131072}',
    b'"options": {"num_ctx": 131072, "num_ctx": 4096}',
], ids=["escaped-key", "escaped-option", "option-in-capitals", "raised-last", "raised-first"])
def test_ollama_runs_the_options_the_proxy_decided_however_they_are_spelt(scheduled_policed, options):
    gpu = scheduled_policed.gpu
    gpu.reset()
    answer = _chat_bytes(scheduled_policed, options)
    assert answer.status_code == 200, answer.text
    # Read as Ollama reads it: keys decoded by Go, the options map read by exact name.
    assert reload_options(gpu.last("/api/chat").json["options"]) == {"num_ctx": ENFORCED_CTX}



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---

# gpt-4o runs llama3.2; llama3-fast is named like a llama3 model but runs qwen3:8b; cloud runs a provider's model.
ALIASES = {"gpt-4o": "llama3.2:latest", "llama3-fast": "qwen3:8b", "cloud": "lab:fake-chat"}
LISTINGS = ("/api/tags", "/api/ps")  # what the pool reads on its own, whoever calls
WORK_PATHS = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show", "/api/pull",
              "/api/push", "/api/create", "/api/copy", "/api/delete")


@pytest.fixture(scope="module")
def guarded(fake_server, provider_server, tmp_path_factory):
    """A proxy with those aliases, a provider 'lab', and keys limited by model patterns."""
    config = base_config(fake_server.url)
    config["backends"] = [{"name": "lab", "type": "openai", "base_url": provider_server.base_url,
                           "api_key_env": "LAB_KEY", "models": ["fake-chat"]}]
    config["models"] = {"aliases": ALIASES}
    server = ProxyServer(config, tmp_path_factory.mktemp("guarded"), env={"LAB_KEY": PROVIDER_KEY}).start()
    store = server.open_store()
    try:
        server.ops = store.create_key("ops", scope="manage", models=["llama3*"], by=TESTER)[1]
        server.llama = store.create_key("llama", models=["llama3*"], by=TESTER)[1]
        server.by_alias = store.create_key("by-alias", models=["gpt-*", "cloud"], by=TESTER)[1]
        server.lab = store.create_key("lab", models=["lab:*"], by=TESTER)[1]
        yield server
    finally:
        store.close()
        server.stop()


def _ran(fake) -> list[str]:
    """Return the paths the fake Ollama was asked to work on (not the pool's own listing reads)."""
    return [recorded.path for recorded in fake.requests if recorded.path in WORK_PATHS]


def _manage(server: ProxyServer, secret: str, path: str, body: dict) -> requests.Response:
    method = requests.delete if path == "/api/delete" else requests.post
    return method(server.url + path, json=body, headers=auth(secret), timeout=TIMEOUT)


# (path, body, the field naming a model the key 'ops' (manage, llama3*) may not use)
REFUSED_MANAGEMENT = [
    ("/api/pull", {"model": "qwen3:8b"}, "model"),
    ("/api/pull", {"name": "qwen3:8b"}, "name"),
    ("/api/pull", {"model": "llama3.2", "name": "qwen3:8b"}, "name"),  # both are checked when both come
    ("/api/pull", {"model": "gpt-4o"}, "model"),  # judged as written: Ollama knows no alias
    ("/api/push", {"model": "qwen3:8b"}, "model"),
    ("/api/push", {"name": "qwen3:8b"}, "name"),
    ("/api/delete", {"model": "qwen3:8b"}, "model"),
    ("/api/delete", {"name": "llama3.2", "model": "qwen3:8b"}, "model"),
    ("/api/create", {"model": "qwen3-mine", "from": "llama3.2"}, "model"),
    ("/api/create", {"name": "qwen3-mine", "from": "llama3.2"}, "name"),
    ("/api/create", {"model": "llama3-mine", "from": "qwen3:8b"}, "from"),
    # Not a field of Ollama's: the from Ollama reads is the one checked.
    ("/api/create", {"model": "llama3-mine", "from": "qwen3:8b", "from_": "llama3.2"}, "from"),
    ("/api/copy", {"source": "qwen3:8b", "destination": "llama3-copy"}, "source"),
    ("/api/copy", {"source": "llama3.2", "destination": "qwen3:8b"}, "destination"),
]


@pytest.mark.parametrize("path, body, field", REFUSED_MANAGEMENT,
                         ids=[" ".join([path, *(f"{k}={v}" for k, v in body.items())])
                              for path, body, _ in REFUSED_MANAGEMENT])
def test_a_manage_key_may_not_manage_a_model_its_patterns_exclude(guarded, fake, path, body, field):
    answer = _manage(guarded, guarded.ops, path, {**body, "stream": False})
    assert answer.status_code == 403, answer.text
    assert answer.json() == {"error": f"token 'ops' may not use the model '{body[field]}' named in '{field}'"}
    assert _ran(fake) == []  # Ollama was asked nothing


def test_a_manage_key_manages_the_models_its_patterns_allow(guarded, fake):
    steps = [("/api/pull", {"model": "llama3.3"}), ("/api/create", {"model": "llama3-mine", "from": "llama3.2"}),
             ("/api/copy", {"source": "llama3.2", "destination": "llama3-copy"}),
             ("/api/delete", {"model": "llama3-copy"})]
    for path, body in steps:
        answer = _manage(guarded, guarded.ops, path, {**body, "stream": False})
        assert answer.status_code == 200, (path, answer.text)
    assert _ran(fake) == [path for path, _ in steps]
    assert {"llama3.3:latest", "llama3-mine:latest"} <= set(fake.models) and "llama3-copy:latest" not in fake.models


def test_a_shared_manage_token_still_manages_every_model(guarded, fake):
    steps = [("/api/pull", {"model": "qwen3:8b"}), ("/api/copy", {"source": "qwen3:8b", "destination": "qwen3-copy"}),
             ("/api/delete", {"model": "qwen3-copy"})]
    for path, body in steps:
        answer = _manage(guarded, MANAGE, path, {**body, "stream": False})
        assert answer.status_code == 200, (path, answer.text)
    assert _ran(fake) == [path for path, _ in steps]


# Every surface that runs a model, asked for a hidden alias (its model is one the key may not use).
SURFACES = [
    ("/api/generate", {"prompt": "hi", "stream": False}),
    ("/api/chat", {"messages": HI, "stream": False}),
    ("/api/embed", {"input": "hi"}),
    ("/api/embeddings", {"prompt": "hi"}),
    ("/v1/chat/completions", {"messages": HI}),
    ("/v1/chat/completions", {"messages": HI, "stream": True}),
    ("/v1/completions", {"prompt": "hi"}),
    ("/v1/embeddings", {"input": "hi"}),
    ("/v1/responses", {"input": "hi"}),
    ("/v1/messages", {"max_tokens": 16, "messages": HI}),
    ("/anthropic/v1/messages", {"max_tokens": 16, "messages": HI, "stream": True}),
    ("/v1/messages/count_tokens", {"messages": HI}),
]
# (key, alias): llama3* may not run qwen3:8b; a key whose patterns name only aliases may run nothing
HIDDEN_ALIASES = [("llama", "llama3-fast"), ("by_alias", "gpt-4o"), ("by_alias", "cloud")]


@pytest.mark.parametrize("key, alias", HIDDEN_ALIASES, ids=[f"{key}-{alias}" for key, alias in HIDDEN_ALIASES])
@pytest.mark.parametrize("path, body", SURFACES, ids=[f"{path}{'-stream' if body.get('stream') else ''}"
                                                      for path, body in SURFACES])
def test_an_alias_is_refused_on_every_surface_to_a_key_that_may_not_use_its_model(
        guarded, fake, provider, key, alias, path, body):
    answer = requests.post(guarded.url + path, json={"model": alias, **body}, headers=auth(getattr(guarded, key)),
                           timeout=TIMEOUT)
    assert answer.status_code == 403, answer.text
    assert f"may not use the model '{alias}'" in _error_message(answer)
    assert _ran(fake) == [] and provider.requests == []


@pytest.mark.parametrize("key, alias", HIDDEN_ALIASES, ids=[f"{key}-{alias}" for key, alias in HIDDEN_ALIASES])
def test_a_hidden_alias_is_not_found_as_an_unknown_model_is(guarded, fake, key, alias):
    secret = getattr(guarded, key)
    shown = requests.post(guarded.url + "/api/show", json={"model": alias}, headers=auth(secret), timeout=TIMEOUT)
    assert (shown.status_code, shown.json()) == (404, {"error": f"model '{alias}' not found"})
    described = requests.get(f"{guarded.url}/v1/models/{alias}", headers=auth(secret), timeout=TIMEOUT)
    assert described.status_code == 404 and described.json()["error"]["code"] == "model_not_found"
    unknown = requests.post(guarded.url + "/api/show", json={"model": "llama3-nothing"},
                            headers=auth(guarded.llama), timeout=TIMEOUT)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'llama3-nothing' not found"})


@pytest.mark.parametrize("key, listed", [
    ("llama", ["gpt-4o", "llama3.2:latest"]),  # not llama3-fast, which runs qwen3:8b
    ("by_alias", []),  # patterns naming aliases only: nothing
    ("lab", ["cloud", "lab:fake-chat"]),
])
def test_listings_show_an_alias_only_with_a_model_the_key_may_use(guarded, fake, key, listed):
    for model in ("llama3.2", "qwen3:8b"):  # loaded, so that /api/ps lists them too
        requests.post(guarded.url + "/api/generate", json={"model": model, "prompt": "x", "stream": False},
                      headers=auth(GENERATE), timeout=TIMEOUT).raise_for_status()
    secret = getattr(guarded, key)

    def names(path: str) -> list[str]:
        answer = requests.get(guarded.url + path, headers=auth(secret), timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        if path == "/v1/models":
            return sorted(model["id"] for model in answer.json()["data"])
        return sorted(model["name"] for model in answer.json()["models"])
    assert names("/api/tags") == names("/v1/models") == listed
    assert names("/api/ps") == [name for name in listed if name in ("gpt-4o", "llama3.2:latest")]


def test_an_alias_serves_a_key_that_may_use_its_model(guarded, fake, provider):
    native = requests.post(guarded.url + "/api/chat", json={"model": "gpt-4o", "messages": HI, "stream": False},
                           headers=auth(guarded.llama), timeout=TIMEOUT)
    assert native.status_code == 200 and native.json()["model"] == "gpt-4o"
    assert fake.last("/api/chat").json["model"] == "llama3.2:latest"
    cloud = requests.post(guarded.url + "/v1/chat/completions", json={"model": "cloud", "messages": HI},
                          headers=auth(guarded.lab), timeout=TIMEOUT)
    assert cloud.status_code == 200 and cloud.json()["model"] == "cloud"
    assert provider.last("/v1/chat/completions").json["model"] == "fake-chat"


def _api_keys(store_path) -> list[tuple]:
    connection = sqlite3.connect(store_path)
    try:
        return connection.execute("SELECT * FROM api_keys ORDER BY id").fetchall()
    finally:
        connection.close()


def _rename_table(store_path, old: str, new: str) -> None:
    connection = sqlite3.connect(store_path, timeout=TIMEOUT, isolation_level=None)
    try:
        connection.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        connection.close()


def test_a_flood_of_unknown_tokens_neither_pushes_a_valid_key_out_nor_writes_the_store(fake, start_proxy):
    config = base_config(fake.url)
    config["auth"].update(key_cache_seconds=300, key_cache_size=4)  # room for the three keys here, no more
    server = start_proxy(config, workers=1)  # one worker: one cache, whichever connection a request comes on
    store_path = server.workdir / "store.db"
    store = server.open_store()
    try:
        valid, disabled, expired = (store.create_key(name, by=TESTER)[1] for name in ("valid", "disabled", "expired"))
        store.update_key("disabled", enabled=False, by=TESTER)
        store.update_key("expired", expires_at=datetime(2020, 1, 2, tzinfo=timezone.utc), by=TESTER)
    finally:
        store.close()

    def chat(secret: str) -> requests.Response:
        return requests.post(server.url + "/api/chat", json={"model": "llama3.2", "messages": HI, "stream": False},
                             headers=auth(secret), timeout=TIMEOUT)
    assert chat(valid).status_code == 200  # looked up, its last use written, and remembered
    written = _api_keys(store_path)
    flood = ["op-" + secrets.token_urlsafe(32) for _ in range(40)]
    for token in flood + ["op-short", "op-" + "!" * 43]:
        answer = chat(token)
        assert (answer.status_code, answer.json()) == (401, {"error": "invalid token"})
    for secret, reason in ((disabled, "key 'disabled' is disabled"), (expired, "key 'expired' expired at")):
        answer = chat(secret)
        assert answer.status_code == 401 and reason in answer.json()["error"]
    assert _api_keys(store_path) == written  # failed look-ups wrote nothing: no row, no last use

    # From here on, a key look-up that reaches the store fails (503): what still works came from a cache.
    _rename_table(store_path, "api_keys", "api_keys_away")
    assert chat(valid).status_code == 200
    assert chat(flood[-1]).status_code == 401  # an unknown token asked again is not looked up again
    assert chat("op-" + secrets.token_urlsafe(32)).status_code == 503  # a new one is: the store is out of reach



# --- Behind nginx, the admin login, and /health -----------------------------------------------

DEPLOY_ENV = DEPLOY / "ollama-proxy.env"
FORGED = "203.0.113.9"  # an address no client here has: whoever names it is lying


class _FromAddress(HTTPAdapter):
    """Connect from a chosen loopback address: all of 127.0.0.0/8 is this machine, each one a client."""

    def __init__(self, address: str):
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self._address, 0), **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


def deploy_setting(name: str) -> str:
    """Return a variable's value as deploy/ollama-proxy.env sets it."""
    values = [line.partition("=")[2] for line in DEPLOY_ENV.read_text().splitlines() if line.startswith(name + "=")]
    assert len(values) == 1, f"{DEPLOY_ENV} should set {name} once"
    return values[0]


def login_attempt(session: requests.Session, url: str, username: str = "admin",
                  password: str = PASSWORD) -> requests.Response:
    """Post the login form as a browser would, its CSRF token read from the form once per session."""
    if not hasattr(session, "csrf_token"):
        session.csrf_token = csrf_token(session, url)
    form = {"username": username, "password": password, "csrf_token": session.csrf_token}
    return session.post(url + "/admin/login", data=form, allow_redirects=False, timeout=30)


def client_of(server: ProxyServer, request_id: str) -> str:
    return server.access_entry(request_id)["client"]


@pytest.fixture(scope="module")
def behind_nginx(fake_server, tmp_path_factory, test_services):
    """The deploy's nginx site in front of gunicorn, run with the deploy's environment file's trust."""
    workdir = tmp_path_factory.mktemp("front-door")
    trusted = {"OLLAMA_PROXY_TRUSTED_PROXIES": deploy_setting("OLLAMA_PROXY_TRUSTED_PROXIES")}
    server = ProxyServer(admin_config(fake_server.url, workdir), workdir / "proxy", env=trusted)
    front = Nginx(server.port, workdir / "nginx")
    try:
        start_server(server)
        front.start()
        yield server, front
    finally:
        front.stop()
        server.stop()


def test_behind_nginx_the_access_log_names_the_real_client(behind_nginx):
    server, front = behind_nginx
    answer = client_at("127.0.0.2").get(front.url + "/api/tags", headers={**auth(), "X-Forwarded-For": FORGED},
                                         timeout=30)
    assert answer.status_code == 200
    assert client_of(server, answer.headers["X-Request-Id"]) == "127.0.0.2"


def test_behind_nginx_failed_logins_lock_out_their_own_address_only(behind_nginx):
    server, front = behind_nginx
    guesser, admin = client_at("127.0.0.3"), client_at("127.0.0.4")
    guesses = [login_attempt(guesser, front.url, password=f"guess {i}").status_code for i in range(ATTEMPTS)]
    locked = login_attempt(guesser, front.url)  # the right password, from the guesser's address
    logged_in = login_attempt(admin, front.url)
    assert guesses == [401] * ATTEMPTS
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text
    assert (logged_in.status_code, logged_in.headers.get("Location")) == (302, "/admin")
    errors = (server.log_dir / "error.log").read_text()
    assert errors.count("admin login failed for 'admin' from 127.0.0.3") == ATTEMPTS


def test_nginx_refuses_a_burst_of_login_posts_before_the_proxy(behind_nginx):
    _, front = behind_nginx
    client = client_at("127.0.0.5")
    pages = [client.get(front.url + "/admin/login", timeout=30).status_code for _ in range(15)]
    # No CSRF token: each post that passes nginx is a cheap 400 from the proxy, no password hashed.
    posts = [client.post(front.url + "/admin/login", data={"username": f"u{i}", "password": "p"}, timeout=30)
             for i in range(25)]
    statuses = [post.status_code for post in posts]
    assert pages == [200] * 15  # showing the form is not limited
    assert statuses[:11] == [400] * 11  # one, and a burst of ten, at once
    refused = [post for post in posts if post.status_code == 429]
    assert refused and all("nginx" in post.text for post in refused), statuses


def test_without_a_proxy_in_front_a_forged_forwarded_for_is_ignored(fake, start_proxy, tmp_path):
    server = start_proxy(admin_config(fake.url, tmp_path), workers=1)
    answer = requests.get(server.url + "/api/tags", headers={**auth(), "X-Forwarded-For": FORGED}, timeout=30)
    assert client_of(server, answer.headers["X-Request-Id"]) == "127.0.0.1"
    session = requests.Session()  # each guess names another address: all are counted against this one
    for i in range(ATTEMPTS):
        session.headers["X-Forwarded-For"] = f"198.51.100.{i}"
        assert login_attempt(session, server.url, password="wrong").status_code == 401
    session.headers["X-Forwarded-For"] = "198.51.100.99"
    assert login_attempt(session, server.url).status_code == 429


def test_with_one_trusted_proxy_only_the_last_hop_names_the_client(fake, start_proxy, tmp_path):
    server = start_proxy(base_config(fake.url), workers=1, env={"OLLAMA_PROXY_TRUSTED_PROXIES": "1"})
    chain = f"{FORGED}, 198.51.100.7"  # the client wrote the first; the proxy in front added the last
    answer = requests.get(server.url + "/api/tags", headers={**auth(), "X-Forwarded-For": chain}, timeout=30)
    assert client_of(server, answer.headers["X-Request-Id"]) == "198.51.100.7"


def test_one_address_is_bounded_whatever_the_user_name(fake, start_proxy, tmp_path):
    bound = 4
    server = start_proxy(admin_config(fake.url, tmp_path, login_address_attempts=bound), workers=1)
    guesser = requests.Session()
    names = [login_attempt(guesser, server.url, username=f"user{i}").status_code for i in range(bound)]
    refused = login_attempt(guesser, server.url)  # the right name and password, from the same address
    other = login_attempt(client_at("127.0.0.2"), server.url)
    assert names == [401] * bound
    assert refused.status_code == 429 and "from this address" in refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert other.status_code == 302


def test_a_burst_of_logins_is_refused_after_the_bound_while_a_stream_flows(fake, start_proxy, tmp_path):
    bound, burst, chunks = 8, 24, 40
    server = start_proxy(admin_config(fake.url, tmp_path, login_address_attempts=bound), workers=1)
    fake.script("llama3.2:latest", reply=" ".join(["w"] * chunks), chunk_delay=0.05)
    arrivals: list[float] = []
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
    with requests.post(server.url + "/api/chat", headers=auth(), json=body, stream=True, timeout=30) as stream:
        lines = stream.iter_lines()
        parts = [json.loads(next(lines))]  # the stream runs on the one worker
        with ThreadPoolExecutor(max_workers=6) as pool:
            sessions = [requests.Session() for _ in range(6)]
            answers = pool.map(lambda i: login_attempt(sessions[i % 6], server.url, username=f"guess{i}"),
                               range(burst))
            for line in lines:
                arrivals.append(time.monotonic())
                parts.append(json.loads(line))
            statuses = sorted(answer.status_code for answer in answers)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    print(f"stream during a login burst: longest gap {max(gaps):.3f}s")
    assert statuses == [401] * bound + [429] * (burst - bound)
    assert len(parts) == chunks + 1 and parts[-1]["done"]
    assert "".join(p["message"]["content"] for p in parts) == " ".join(["w"] * chunks)


def test_health_tells_a_caller_without_a_token_only_the_status(fake, start_proxy, tmp_path):
    config = base_config(fake.url)
    port = fake.url.rsplit(":", 1)[1]
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": f"http://ops:s3cret@127.0.0.1:{port}",
                           **AT_ONCE}]
    server = start_proxy(config, workers=1)
    key = create_key(server, "--name", "monitor")
    disabled = create_key(server, "--name", "gone")
    assert cli(server, "keys", "disable", "gone").returncode == 0
    answers = {who: requests.get(server.url + "/health", headers=headers, timeout=30)
               for who, headers in [("nobody", {}), ("wrong token", auth("not-a-token")),
                                    ("disabled key", auth(disabled)), ("token", auth()), ("key", auth(key))]}
    for who in ("nobody", "wrong token", "disabled key"):
        assert (answers[who].status_code, answers[who].json()) == (200, {"status": "ok"}), who
    for who in ("token", "key"):
        report = answers[who].json()
        assert answers[who].status_code == 200 and report["status"] == "ok" and report["version"], who
        assert [(u["name"], u["url"], u["version"]) for u in report["upstreams"]] == [
            ("default", fake.url, fake.version), ("gpu2", f"http://***@127.0.0.1:{port}", fake.version)], who
    assert not any("s3cret" in answer.text for answer in answers.values())


def test_health_says_down_when_no_ollama_server_answers(start_proxy):
    server = start_proxy(base_config(f"http://127.0.0.1:{free_port()}"), workers=1)
    answer = requests.get(server.url + "/health", timeout=30)
    assert (answer.status_code, answer.json()) == (503, {"status": "down"})
    assert requests.get(server.url + "/health", headers=auth(), timeout=30).json()["status"] == "down"


def test_health_probes_each_server_once_a_period_per_worker(start_proxy):
    workers, calls = 2, 30
    with FakeOllama() as first, FakeOllama() as second:
        config = base_config(first.url, health_cache_seconds=60)
        config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": second.url, **AT_ONCE}]
        server = start_proxy(config, workers=workers)
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda _: requests.get(server.url + "/health", timeout=30).status_code,
                                     range(calls)))
        probes = [sum(r.path == "/api/version" for r in fake.requests) for fake in (first, second)]
    assert statuses == [200] * calls
    assert all(1 <= count <= workers for count in probes), probes




# --- What goes to providers and what comes back; usage that cannot be switched off ------------

CLOUD_ORG = "org-cloudaccount0123456789"
CLOUD_PROJECT = "proj_cloudproject0123456789"
VAULT_USER, VAULT_PASSWORD = "vault-user-0123456789", "vault-password-0123456789"
METERED = "metered-token-0123456789"  # a token with 5 tokens per minute
CLOUD_SECRETS = (PROVIDER_KEY, CLOUD_ORG, CLOUD_PROJECT)


@pytest.fixture(scope="module")
def cloud_proxy(fake_server, provider_server, tmp_path_factory):
    """A proxy with the fake provider as backend ``cloud``, and ``vault``: a provider behind userinfo, down."""
    config = base_config(fake_server.url)
    config["auth"]["generate_tokens"].append({"name": "metered", "token": METERED, "tpm": 5})
    config["backends"] = [
        {"name": "cloud", "type": "openai", "base_url": provider_server.base_url, "api_key_env": "CLOUD_KEY",
         "organization": CLOUD_ORG, "project": CLOUD_PROJECT, "models": ["fake-chat", "fake-embed"]},
        {"name": "vault", "type": "openai", "base_url": f"http://{VAULT_USER}:{VAULT_PASSWORD}@127.0.0.1:9/v1",
         "models": ["m"]}]
    config["retry"] = {"attempts": 1}
    server = ProxyServer(config, tmp_path_factory.mktemp("cloud"), env={"CLOUD_KEY": PROVIDER_KEY}).start()
    yield server
    server.stop()


def _events(body: bytes) -> list[dict]:
    return [json.loads(line[5:]) for line in body.split(b"\n") if line.startswith(b"data:") and b"[DONE]" not in line]


@pytest.mark.parametrize("name, asked", [
    ("not-asked", {"stream": True}),
    ("switched-off", {"stream": True, "stream_options": {"include_usage": False}}),
    # A provider written in Go reads the last key in any case: the switch must not survive beside ours.
    ("switched-off-in-another-case", {"stream": True, "stream_options": {"include_usage": True,
                                                                         "INCLUDE_USAGE": False}}),
])
def test_a_provider_stream_is_counted_though_the_client_did_not_ask_for_the_usage(cloud_proxy, provider, name, asked):
    provider.script("fake-chat", content="one two three", fragment_size=4)
    request_id = f"unasked-usage-{name}"
    answer = requests.post(cloud_proxy.url + "/v1/chat/completions", timeout=10, json={
        "model": "cloud/fake-chat", "messages": HI, **asked}, headers={**auth(), "X-Request-Id": request_id})
    events = _events(answer.content)
    assert answer.status_code == 200 and "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "one two three"
    assert not [e for e in events if e.get("usage")]  # the client did not ask for the usage chunk
    assert provider.last("/v1/chat/completions").json["stream_options"] == {"include_usage": True}
    entry = cloud_proxy.access_entry(request_id)
    assert entry["completion_tokens"] == 4 and entry["prompt_tokens"] > 0


def test_tokens_a_client_did_not_ask_to_see_still_count_against_its_tokens_per_minute(cloud_proxy, provider):
    answer = requests.post(cloud_proxy.url + "/v1/chat/completions", headers=auth(METERED), timeout=10, json={
        "model": "cloud/fake-chat", "messages": HI, "stream": True, "stream_options": {"include_usage": False}})
    assert answer.status_code == 200 and answer.headers["x-ratelimit-remaining-tokens"] == "5"
    deadline = time.monotonic() + 5  # the charge lands as the response closes, just after the client has it
    while (after := requests.get(cloud_proxy.url + "/v1/models", headers=auth(METERED))).status_code == 200:
        assert time.monotonic() < deadline, "the stream's tokens were never charged"
        time.sleep(0.05)
    assert after.status_code == 429 and "5 tokens per minute" in after.json()["error"]["message"]


@pytest.mark.parametrize("path, body", [
    ("/api/chat", {"model": "cloud:fake-chat", "messages": HI, "stream_options": {"include_usage": False}}),
    ("/v1/messages", {"model": "cloud:fake-chat", "messages": HI, "max_tokens": 50, "stream": True}),
    ("/v1/responses", {"model": "cloud:fake-chat", "input": "hi", "stream": True}),
])
def test_every_translated_surface_asks_the_provider_for_the_usage(cloud_proxy, provider, path, body):
    request_id = "translated-usage" + path.replace("/", "-")
    answer = requests.post(cloud_proxy.url + path, json=body, timeout=10,
                           headers={**auth(), "X-Request-Id": request_id})
    assert answer.status_code == 200
    assert provider.last("/v1/chat/completions").json["stream_options"] == {"include_usage": True}
    assert cloud_proxy.access_entry(request_id)["completion_tokens"] == 3


@pytest.mark.parametrize("path, body, field", [
    ("/v1/chat/completions", {"model": "cloud/fake-chat", "messages": HI, "models": ["fake-chat", "gpt-5"]},
     "models"),
    ("/v1/chat/completions", {"model": "cloud/fake-chat", "messages": HI, "route": "fallback"}, "route"),
    ("/v1/embeddings", {"model": "cloud/fake-embed", "input": "hi", "models": ["text-embedding-3-large"]},
     "models"),
    ("/api/chat", {"model": "cloud:fake-chat", "messages": HI, "models": ["gpt-5"], "route": "fallback"},
     "models"),
    ("/api/embed", {"model": "cloud:fake-embed", "input": "hi", "route": "fallback"}, "route"),
])
def test_fields_that_let_the_provider_pick_another_model_are_refused(cloud_proxy, provider, path, body, field):
    answer = requests.post(cloud_proxy.url + path, json=body, headers=auth(), timeout=10)
    error = answer.json()["error"]
    assert answer.status_code == 400
    if path.startswith("/v1/"):
        assert (error["type"], error["param"]) == ("invalid_request_error", field)
        error = error["message"]
    assert error.startswith(f"{field} is not accepted")
    assert provider.requests == []


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "cloud/fake-chat", "messages": HI}),
    ("/api/chat", {"model": "cloud:fake-chat", "messages": HI, "stream": False}),
])
def test_only_allowed_request_headers_reach_a_provider(cloud_proxy, provider, path, body):
    client = {**auth(), "X-Forwarded-For": "203.0.113.7", "Cookie": "session=abc", "User-Agent": "hostile/1.0",
              "OpenAI-Organization": "org-someone-else", "OpenAI-Project": "proj_someone_else",
              "X-Stainless-OS": "Linux", "Accept": "application/json"}
    assert requests.post(cloud_proxy.url + path, json=body, headers=client, timeout=10).status_code == 200
    sent = provider.last("/v1/chat/completions").headers
    assert (sent["authorization"], sent["openai-organization"], sent["openai-project"]) == (
        f"Bearer {PROVIDER_KEY}", CLOUD_ORG, CLOUD_PROJECT)
    assert not {"x-forwarded-for", "cookie", "x-stainless-os"} & set(sent) and sent["user-agent"] != "hostile/1.0"


@pytest.mark.parametrize("stream", [True, False])
def test_only_allowed_response_headers_come_back_from_a_provider(cloud_proxy, provider, stream):
    provider.script("fake-chat", headers={"Set-Cookie": "__cf_bm=tracking", "OpenAI-Organization": CLOUD_ORG,
                                       "OpenAI-Project": CLOUD_PROJECT, "X-Request-Id": "req_upstream_1",
                                       "x-ratelimit-remaining-tokens": "149000", "openai-processing-ms": "12"})
    answer = requests.post(cloud_proxy.url + "/v1/chat/completions", headers=auth(), timeout=10,
                           json={"model": "cloud/fake-chat", "messages": HI, "stream": stream})
    assert answer.status_code == 200 and answer.headers["X-Upstream-Request-Id"] == "req_upstream_1"
    assert answer.headers["Content-Type"].startswith("text/event-stream" if stream else "application/json")
    assert not {"set-cookie", "openai-organization", "openai-project", "x-ratelimit-remaining-tokens",
                "openai-processing-ms"} & {name.lower() for name in answer.headers}


@pytest.mark.parametrize("path, stream, script", [
    ("/v1/chat/completions", False, {"fail_status": 400}),
    ("/api/chat", False, {"fail_status": 400}),
    ("/v1/chat/completions", True, {"error_after": 2}),
    ("/api/chat", True, {"error_after": 2}),
], ids=["openai error status", "ollama error status", "openai error mid-stream", "ollama error mid-stream"])
def test_a_providers_error_text_reaches_the_client_with_the_secrets_blanked(cloud_proxy, provider, path, stream,
                                                                          script):
    provider.script("fake-chat", echo_credentials=True, **script)
    model = "cloud/fake-chat" if path.startswith("/v1/") else "cloud:fake-chat"
    answer = requests.post(cloud_proxy.url + path, headers=auth(), timeout=10,
                           json={"model": model, "messages": HI, "stream": stream})
    said = answer.content.decode()
    assert "(you sent Authorization: Bearer ***; OpenAI-Organization: ***; OpenAI-Project: ***)" in said
    assert not [secret for secret in CLOUD_SECRETS if secret in said]


def test_a_providers_base_url_userinfo_is_not_in_its_errors(cloud_proxy):
    answer = requests.post(cloud_proxy.url + "/api/chat", headers=auth(), timeout=10,
                           json={"model": "vault:m", "messages": HI, "stream": False})
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("cannot reach provider vault at http://127.0.0.1:9/v1")
    assert VAULT_USER not in answer.text and VAULT_PASSWORD not in answer.text




# --- The usage store, CSV exports and key expiry ----------------------------------------------

ADMIN_PASSWORD = "usage exports are read in spreadsheets"
HOSTILE_MODEL = "m" * 300 + "\u0000\ud800"  # too long for the column, NUL and a lone surrogate
FORMULA_KEY = "=HYPERLINK(\"http://evil.example\",\"open\")"
FORMULA_MODEL = "@SUM(1+1)*cmd|' /C calc'!A0"


def post_chat(server, token: str, model: str, request_id: str) -> int:
    body = json.dumps({"model": model, "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    answer = requests.post(server.url + "/api/chat", data=body, timeout=30,
                           headers={**auth(token), "X-Request-Id": request_id, "Content-Type": "application/json"})
    return answer.status_code


def usage_rows(server, wanted: set[str], timeout: float = 15.0) -> dict[str, dict]:
    """Wait for the usage rows of the request ids ``wanted``; return every row by request id."""
    store = server.open_store()
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = {row["request_id"]: row for row in store.query_usage(limit=None)}
            if wanted <= set(rows):
                return rows
            assert time.monotonic() < deadline, f"usage rows never written: {sorted(wanted - set(rows))}"
            time.sleep(0.1)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_model_name_postgresql_cannot_store_is_recorded_and_the_usage_writer_carries_on(
        fake, start_proxy, postgres_cluster):
    config = base_config(fake.url)
    config["store"] = {"url": postgres_cluster.new_database()}
    config["usage"] = {"flush_interval": 0.1}
    server = start_proxy(config, workers=1)
    post_chat(server, ALICE, HOSTILE_MODEL, "hostile-model")
    assert post_chat(server, ALICE, "llama3.2", "after-it") == 200
    rows = usage_rows(server, {"hostile-model", "after-it"})
    assert rows["hostile-model"]["model"] == "m" * 255  # cut to the column, NUL and surrogate dropped
    assert rows["after-it"]["model"] == "llama3.2"
    metrics = requests.get(server.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    assert "ollama_proxy_usage_rows_rejected_total 0.0" in metrics  # made to fit, not refused
    error_log = server.log_dir / "error.log"
    assert "usage:" not in (error_log.read_text() if error_log.exists() else "") + server.stderr()


@pytest.mark.postgres
def test_a_row_the_store_refuses_is_dropped_logged_and_counted_while_the_others_are_written(
        fake, start_proxy, postgres_cluster):
    url = postgres_cluster.new_database()
    config = base_config(fake.url)
    config["store"] = {"url": url}
    config["usage"] = {"flush_interval": 0.1}
    server = start_proxy(config, workers=1)
    # A column narrower than the rows are cut for, as after a careless migration: the store refuses the row.
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE usage ALTER COLUMN model TYPE varchar(10)"))
    engine.dispose()
    post_chat(server, ALICE, "a-model-name-too-wide", "refused")
    assert post_chat(server, ALICE, "llama3.2", "written") == 200
    rows = usage_rows(server, {"written"})
    assert "refused" not in rows
    metrics = requests.get(server.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    assert "ollama_proxy_usage_rows_rejected_total 1.0" in metrics
    logged = (server.log_dir / "error.log").read_text()
    assert ("the store refused the row of request refused (key 'alice'), dropped (1 so far): "
            "StringDataRightTruncation: value too long for type character varying(10)") in logged
    assert "a-model-name-too-wide" not in logged and ALICE not in logged


def log_in_to_admin(server) -> requests.Session:
    session = requests.Session()
    answer = login_attempt(session, server.url, password=ADMIN_PASSWORD)
    assert answer.status_code == 302, answer.text
    return session


def test_key_and_model_names_that_start_a_formula_come_out_as_text_in_both_csv_exports(fake, start_proxy, tmp_path):
    config = base_config(fake.url)
    config["usage"] = {"flush_interval": 0.1}
    config["admin"] = {"password_hash": generate_password_hash(ADMIN_PASSWORD),
                       "secret_key_file": str(tmp_path / "admin-secret-key"), "cookie_secure": False}
    server = start_proxy(config, workers=1)
    created = cli(server, "keys", "create", "--name", FORMULA_KEY)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    assert post_chat(server, secret, "llama3.2", "formula-key") == 200
    post_chat(server, ALICE, FORMULA_MODEL, "formula-model")
    usage_rows(server, {"formula-key", "formula-model"})

    exported = cli(server, "usage", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    admin_export = log_in_to_admin(server).get(server.url + "/admin/usage.csv", timeout=10)
    assert admin_export.status_code == 200
    for exported_csv in (exported.stdout, admin_export.text):
        rows = {row["request_id"]: row for row in csv.DictReader(io.StringIO(exported_csv))}
        assert rows["formula-key"]["key_name"] == "'" + FORMULA_KEY
        assert rows["formula-model"]["model"] == "'" + FORMULA_MODEL
        assert rows["formula-key"]["status"] == "200" and int(rows["formula-key"]["prompt_tokens"]) > 0
    as_json = {row["request_id"]: row for row in json.loads(cli(server, "usage", "--format", "json").stdout)}
    assert as_json["formula-key"]["key_name"] == FORMULA_KEY  # JSON is read by programs: kept as it is


def test_keys_create_refuses_an_expiry_in_the_past(proxy):
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    for expires in (yesterday, "2020-01-01T08:00:00+00:00"):
        refused = cli(proxy, "keys", "create", "--name", "born-expired", "--expires", expires)
        assert refused.returncode == 2, refused.stdout
        assert f"argument --expires: {expires} is in the past" in refused.stderr
        assert "op-" not in refused.stdout
    listing = cli(proxy, "keys", "list")
    assert listing.returncode == 0 and "born-expired" not in listing.stdout



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------

IMAGE_DEADLINE = 1.0  # images.timeout of the image proxy: seconds for a whole fetch
DRIP_EVERY = 0.2  # seconds between the bytes of a dripping image server: well within one read's timeout


class ImageServer(ThreadingHTTPServer):
    """Serves /<n>.png as n bytes of image, and two that never finish: /drip-head and /drip-body."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.served: list[str] = []
        self.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _ImageHandler(BaseHTTPRequestHandler):
    server: ImageServer

    def do_GET(self):
        self.server.served.append(self.path)
        if self.path == "/drip-head":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._drip()
            return
        size = 900 if self.path == "/drip-body" else int(self.path.strip("/").removesuffix(".png"))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.path == "/drip-body":
            self._drip()
        else:
            self.wfile.write(b"\x89PNG" + b"\x00" * (size - 4))

    def _drip(self):
        """Send a byte every DRIP_EVERY seconds until the reader leaves or the test ends."""
        try:
            while not self.server.stopping.wait(DRIP_EVERY):
                self.wfile.write(b"a")
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server():
    server = ImageServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def image_proxy(fake_server, tmp_path_factory):
    """A proxy that fetches from this machine (the image server), with small bounds."""
    config = {**base_config(fake_server.url), "images": {
        "allow_private": True, "timeout": IMAGE_DEADLINE, "max_bytes": 1000, "max_total_bytes": 1500,
        "max_urls_per_request": 2}}
    server = ProxyServer(config, tmp_path_factory.mktemp("image-proxy"), workers=1).start()
    yield server
    server.stop()


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
@pytest.mark.parametrize("path", ["/drip-head", "/drip-body"])
def test_an_image_server_dripping_bytes_is_given_up_at_the_deadline(image_proxy, image_server, fake, surface, path):
    api, dialect, body = image_request(surface, [image_server.url + path])
    started = time.monotonic()
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=IMAGE_DEADLINE + 10)
    waited = time.monotonic() - started
    assert answer.status_code == 400, answer.text[:300]
    assert assert_error_shape(dialect, answer) == (f"image URL {image_server.url}{path} was not fetched within "
                                                   f"{IMAGE_DEADLINE:g}s (images.timeout)")
    assert waited < IMAGE_DEADLINE + 5  # the proxy gave up; a read timeout alone would wait for hours
    assert image_server.served == [path] and fake.requests == []


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_a_request_naming_more_image_urls_than_allowed_is_refused_unfetched(image_proxy, image_server, fake,
                                                                            surface):
    api, dialect, body = image_request(surface, [f"{image_server.url}/{n}.png" for n in (10, 20, 30)])
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10)
    assert answer.status_code == 400, answer.text[:300]
    assert assert_error_shape(dialect, answer) == ("the request names 3 image URLs; the proxy fetches at most 2 "
                                                   "for one request (images.max_urls_per_request)")
    assert image_server.served == [] and fake.requests == []


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_images_fetched_for_one_request_are_bounded_together(image_proxy, image_server, fake, surface):
    api, dialect, body = image_request(surface, [f"{image_server.url}/800.png", f"{image_server.url}/750.png"])
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10)
    assert answer.status_code == 413, answer.text[:300]
    assert assert_error_shape(dialect, answer) == ("the images fetched for this request add up to more than "
                                                   "1500 bytes (images.max_total_bytes)")
    assert fake.requests == []
    api, _, body = image_request(surface, [f"{image_server.url}/800.png", f"{image_server.url}/600.png"])
    requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10).raise_for_status()
    assert [len(base64.b64decode(image)) for image in fake.last("/api/chat").json["messages"][0]["images"]] == [
        800, 600]


# IPv6 literals that carry a loopback IPv4 address (NAT64, IPv4-compatible, 6to4, SIIT, Teredo) or are
# local by definition (site-local, local-use NAT64). No network here routes them to 127.0.0.1, so
# the proof is the refusal's reason: checked and refused before any connection is tried.
CARRYING_LOOPBACK = ["[64:ff9b::7f00:1]", "[::127.0.0.1]", "[2002:7f00:1::]", "[::ffff:0:7f00:1]",
                     "[2001:0:808:808:0:0:80ff:fffe]", "[fec0::1]", "[64:ff9b:1::7f00:1]"]


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_image_urls_to_ipv6_addresses_carrying_a_private_one_are_refused(proxy, fake, surface):
    port = int(fake.url.rsplit(":", 1)[1])
    for host in CARRYING_LOOPBACK:
        url = f"http://{host}:{port}/x.png"
        path, dialect, body = image_request(surface, [url])
        answer = requests.post(proxy.url + path, json=body, headers=auth(), timeout=10)
        assert answer.status_code == 400, f"{url}: {answer.status_code} {answer.text[:300]}"
        assert "a private or local address" in assert_error_shape(dialect, answer), url
    assert fake.requests == []


DEEP = 500  # levels of an unknown field: well within what the JSON parser takes


def _deeply_nested(levels: int) -> list:
    return json.loads("[" * levels + "]" * levels)


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/messages", {"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
], ids=["openai", "anthropic"])
def test_a_deeply_nested_unknown_field_is_answered_and_logged(start_proxy, fake, path, body):
    config = base_config(fake.url)
    config["chat_logs"] = {"enabled": True}
    proxy = start_proxy(config, workers=1)
    answer = requests.post(proxy.url + path, json={**body, "x": _deeply_nested(DEEP)}, headers=auth(ALICE),
                           timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    chat_log = proxy.log_dir / "chat.jsonl"
    deadline = time.monotonic() + 10
    while not (chat_log.exists() and chat_log.read_text().strip()):
        assert time.monotonic() < deadline, "no chat log line was written"
        time.sleep(0.05)
    line = json.loads(chat_log.read_text().splitlines()[0])
    assert (line["path"], line["status"]) == (path, 200)
    assert line["request"]["x"] == _deeply_nested(DEEP)
