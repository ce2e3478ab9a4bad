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
from tests.e2e.server import ROOT

# --- A second model key in another case (smuggled model and options) -------------------------



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



# --- The usage store, CSV exports and key expiry ----------------------------------------------

COMMAND = str(Path(sys.executable).with_name("ollama-proxy"))  # the installed command, as a user runs it
ADMIN_PASSWORD = "usage exports are read in spreadsheets"
HOSTILE_MODEL = "m" * 300 + "\u0000\ud800"  # too long for the column, NUL and a lone surrogate
FORMULA_KEY = "=HYPERLINK(\"http://evil.example\",\"open\")"
FORMULA_MODEL = "@SUM(1+1)*cmd|' /C calc'!A0"


def command(server, *args: str) -> subprocess.CompletedProcess:
    """Run ``ollama-proxy ARGS --config <the server's>`` as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, wherever the installed package points
    return subprocess.run([COMMAND, *args, "--config", str(server.config_path)], capture_output=True, text=True,
                          env=env, cwd=server.workdir, timeout=60)


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
    created = command(server, "keys", "create", "--name", FORMULA_KEY)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    assert post_chat(server, secret, "llama3.2", "formula-key") == 200
    post_chat(server, ALICE, FORMULA_MODEL, "formula-model")
    usage_rows(server, {"formula-key", "formula-model"})

    exported = command(server, "usage", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    admin_export = log_in_to_admin(server).get(server.url + "/admin/usage.csv", timeout=10)
    assert admin_export.status_code == 200
    for exported_csv in (exported.stdout, admin_export.text):
        rows = {row["request_id"]: row for row in csv.DictReader(io.StringIO(exported_csv))}
        assert rows["formula-key"]["key_name"] == "'" + FORMULA_KEY
        assert rows["formula-model"]["model"] == "'" + FORMULA_MODEL
        assert rows["formula-key"]["status"] == "200" and int(rows["formula-key"]["prompt_tokens"]) > 0
    as_json = {row["request_id"]: row for row in json.loads(command(server, "usage", "--format", "json").stdout)}
    assert as_json["formula-key"]["key_name"] == FORMULA_KEY  # JSON is read by programs: kept as it is


def test_keys_create_refuses_an_expiry_in_the_past(proxy):
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    for expires in (yesterday, "2020-01-01T08:00:00+00:00"):
        refused = command(proxy, "keys", "create", "--name", "born-expired", "--expires", expires)
        assert refused.returncode == 2, refused.stdout
        assert f"argument --expires: {expires} is in the past" in refused.stderr
        assert "op-" not in refused.stdout
    listing = command(proxy, "keys", "list")
    assert listing.returncode == 0 and "born-expired" not in listing.stdout



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------
