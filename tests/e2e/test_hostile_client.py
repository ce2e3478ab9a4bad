"""A hostile client with a valid but limited key tries to reach past the access policy.

Every test here drives the real server (gunicorn, gevent workers) over the fake Ollama, which
reads request bodies as Ollama's Go decoder does, and checks that what the upstream runs is
exactly what the policy checked, that every bound holds, and that nothing leaks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy
from werkzeug.security import generate_password_hash

from ollama_proxy.config import load_settings
from ollama_proxy.store import open_store
from tests.e2e.conftest import ALICE, SCRAPE, auth, base_config
from tests.e2e.server import ROOT, ProxyServer

CLI = str(Path(sys.executable).with_name("ollama-proxy"))  # what `pip install` put on PATH
TIMEOUT = 30
HI = [{"role": "user", "content": "hi"}]


def cli(server: ProxyServer, *args: str) -> subprocess.CompletedProcess:
    """Run ``ollama-proxy ARGS --config <the server's>`` as its operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, wherever the installed package points
    return subprocess.run([CLI, *args, "--config", str(server.config_path)], capture_output=True, text=True,
                          env=env, cwd=server.workdir, timeout=60)


def create_key(server: ProxyServer, *args: str) -> str:
    """Create a managed key with ``ollama-proxy keys create``; return its secret."""
    done = cli(server, "keys", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}

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
    answer = requests.post(policed.url + path, json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
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
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert next(iter(smuggled)) in _error_message(answer)
    assert fake.calls("/api/chat") == []


def test_what_ollama_runs_is_what_the_policy_checked(policed, fake):
    # The same request spelt correctly is served, with the enforced values as Ollama reads them.
    body = {"model": "llama3.2", "messages": HI, "stream": False, "options": {"num_ctx": 131072},
            "keep_alive": -1}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    ran = fake.last("/api/chat").json  # read as Ollama's Go decoder reads it
    assert ran["model"] == "llama3.2"
    assert ran["options"]["num_ctx"] == ENFORCED_CTX and ran["keep_alive"] == "5m"
    assert answer.json()["model"] == "llama3.2"


def test_a_message_field_in_another_case_is_refused(policed, fake):
    body = {"model": "llama3.2", "stream": False,
            "messages": [{"role": "user", "content": "hi", "Content": "something else"}]}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400 and "messages[0].Content" in _error_message(answer)
    assert fake.calls("/api/chat") == []



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



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
    store = open_store(load_settings(server.config_path, environ={}).store)
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
    page = session.get(server.url + "/admin/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(server.url + "/admin/login", allow_redirects=False, timeout=10,
                          data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.text
    return session


def test_key_and_model_names_that_start_a_formula_come_out_as_text_in_both_csv_exports(fake, start_proxy, tmp_path):
    config = base_config(fake.url)
    config["usage"] = {"flush_interval": 0.1}
    config["admin"] = {"password_hash": generate_password_hash(ADMIN_PASSWORD),
                       "secret_key_file": str(tmp_path / "admin-secret-key")}
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
