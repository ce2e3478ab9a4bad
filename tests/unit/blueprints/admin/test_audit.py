"""The audit page through Flask's test client: a change made here names the admin and its address."""

from __future__ import annotations

import re

from ollama_proxy.blueprints.admin.session import start_session
from ollama_proxy.store import Actor, current_store
from tests.unit.blueprints.admin.conftest import admin_app, csrf_token

OPS = Actor("ops", "cli", "gpu-box")


def test_a_key_made_here_is_in_the_trail_under_the_admin_and_its_address(client, store):
    form = {"csrf_token": csrf_token(client, "/admin/keys"), "name": "alice", "scope": "generate", "rpm": "30"}
    assert client.post("/admin/keys", data=form, environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 303
    (entry,) = store.audit_trail()
    assert (entry.actor, entry.actor_kind, entry.origin, entry.action) == ("admin", "admin", "10.0.0.7",
                                                                           "key.create")
    page = client.get("/admin/audit").get_data(as_text=True)
    row = re.search(r'<tr data-action="key.create" data-target="alice">.*?</tr>', page, re.S).group(0)
    assert "admin" in row and "10.0.0.7" in row and "&#34;rpm&#34;:30" in row


def test_the_page_lists_a_period_newest_first(client, store):
    for n in range(3):
        store.set_alias(f"alias-{n}", "llama3.2", by=OPS)
    page = client.get("/admin/audit?days=30").get_data(as_text=True)
    assert re.findall(r'data-target="(alias-\d)"', page) == ["alias-2", "alias-1", "alias-0"]
    assert "The newest" not in page
    assert 'value="30" selected' in page and ">Audit<" in page  # the period kept; the tab in the navigation
    assert client.get("/admin/audit?days=bogus").status_code == 200  # read as the default period


def test_an_empty_period_says_so(client):
    assert "No entries in the last day." in client.get("/admin/audit?days=1").get_data(as_text=True)


def test_past_audit_rows_only_the_newest_are_shown_and_the_page_says_so(tmp_path):
    app = admin_app(tmp_path, admin={"audit_rows": 2})
    client = app.test_client()
    with client.session_transaction("/admin") as session:
        start_session(session, app.config["SETTINGS"].admin)
    with app.app_context():
        for n in range(3):
            current_store().set_alias(f"alias-{n}", "llama3.2", by=OPS)
        page = client.get("/admin/audit").get_data(as_text=True)
        current_store().close()
    assert re.findall(r'data-target="(alias-\d)"', page) == ["alias-2", "alias-1"]
    assert "The newest 2 entries" in page
