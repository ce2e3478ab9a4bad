"""A key rotated with ``ollama-proxy keys rotate`` and the admin page's Rotate button, on gunicorn with two workers."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests

from tests.e2e.admin_page import admin_config
from tests.e2e.command import cli, create_key
from tests.e2e.server import ProxyServer, wait_for
from tests.e2e.test_admin_pages import logged_in

CACHE_SECONDS = 0.5  # auth.key_cache_seconds: how long a worker trusts what it read of a key
TRIES = 12  # requests, each on a new connection, so that both workers answer some


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rotation")
    config = admin_config(fake_server.url, workdir)
    config["auth"]["key_cache_seconds"] = CACHE_SECONDS
    config["usage"] = {"flush_interval": 0.2}
    started = ProxyServer(config, workdir, workers=2).start()
    yield started
    started.stop()


def ok(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def statuses(server, secret: str, tries: int = TRIES) -> set[int]:
    """Ask for a chat ``tries`` times, each on a new connection; return the statuses answered."""
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    return {requests.post(server.url + "/api/chat", json=body, headers={"Authorization": f"Bearer {secret}",
                                                                       "Connection": "close"}, timeout=30).status_code
            for _ in range(tries)}


def refusal(server, secret: str) -> dict:
    return requests.get(server.url + "/api/tags", headers={"Authorization": f"Bearer {secret}"}, timeout=30).json()


def stored_key(server, name: str):
    store = server.open_store()
    try:
        return store.get_key(name)
    finally:
        store.close()


def test_the_old_secret_works_through_the_grace_period_then_is_refused(server):
    ok(cli(server, "teams", "create", "research", "--rpm", "600"))
    old = create_key(server, "--name", "ci", "--team", "research", "--models", "llama3*", "--rpm", "300")
    ok(cli(server, "budgets", "set", "--key", "ci", "--period", "month", "--tokens", "1e9"))
    before = stored_key(server, "ci")
    assert statuses(server, old) == {200}
    said = ok(cli(server, "keys", "rotate", "ci", "--grace", "8s")).splitlines()
    new = said[-1]
    assert new.startswith("op-") and new != old and "(8s of grace)" in said[0]
    after = stored_key(server, "ci")
    assert (after.id, after.team, after.models, after.rpm, after.created_at) == (
        before.id, "research", ("llama3*",), 300, before.created_at)
    assert statuses(server, new) == {200}
    assert datetime.now(timezone.utc) < after.previous_until  # still in its grace period: the checks count
    assert statuses(server, old) == {200}
    time.sleep(max(0.0, (after.previous_until - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    assert statuses(server, old) == {401}
    assert "key 'ci' was rotated: this secret stopped working at" in refusal(server, old)["error"]
    assert statuses(server, new) == {200}
    (budget,) = json.loads(ok(cli(server, "budgets", "list", "--format", "json")))
    assert (budget["holder"], budget["amount"]) == ("ci", 1e9) and budget["spent"] > 0
    store = server.open_store()
    try:
        assert wait_for(lambda: len([r for r in store.query_usage(limit=None) if r["key_name"] == "ci"]) >= 4 * TRIES)
        rows = [r for r in store.query_usage(limit=None) if r["key_name"] == "ci"]
        entry = [e for e in store.audit_trail() if e.action == "key.rotate"][-1]
    finally:
        store.close()
    assert {(r["key_id"], r["team"]) for r in rows} == {(before.id, "research")}  # one history, old secret and new
    assert (entry.target, entry.actor_kind, entry.after["grace_seconds"]) == ("ci", "cli", 8)


def test_without_grace_the_old_secret_is_refused_by_every_worker_within_the_cache_bound(server):
    old = create_key(server, "--name", "bot")
    assert statuses(server, old) == {200}  # both workers hold it in their caches
    new = ok(cli(server, "keys", "rotate", "bot")).splitlines()[-1]
    time.sleep(CACHE_SECONDS + 0.2)  # as for a deleted key
    assert statuses(server, old) == {401}
    assert statuses(server, new) == {200}


def test_the_admin_pages_rotate_button_shows_the_new_secret_once(server, browser, fake):
    old = create_key(server, "--name", "webapp", "--rpm", "120")
    page = logged_in(browser, server.url)
    page.goto(server.url + "/admin/keys/webapp")
    page.fill("#rotate-key input[name=grace]", "1h")
    page.click("#rotate-key button[type=submit]")
    page.wait_for_url(server.url + "/admin/keys/webapp/rotated")
    new = page.locator("#secret").inner_text()
    assert new.startswith("op-") and new != old
    assert "Its old secret works until" in page.locator("#rotated").inner_text()
    page.reload()
    assert page.locator("#secret").count() == 0 and "rotate the key on" in page.locator("#secret-gone").inner_text()
    assert statuses(server, new) == statuses(server, old) == {200}
    assert stored_key(server, "webapp").rpm == 120
    listed = json.loads(ok(cli(server, "audit", "--format", "json")))
    rotation = [e for e in listed if e["action"] == "key.rotate" and e["target"] == "webapp"]
    assert rotation and rotation[-1]["actor_kind"] == "admin" and rotation[-1]["after"]["grace_seconds"] == 3600
    assert page.script_errors == []
    page.context.close()
