"""The teams pages through Flask's test client: made, edited, deleted once empty; a key put in one."""

from __future__ import annotations

import re

from tests.actors import TESTER
from tests.unit.blueprints.admin.conftest import csrf_token


def _post(client, path: str, form_page: str, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **fields})


def test_a_team_is_made_edited_and_shown_with_its_keys(client, store):
    made = _post(client, "/admin/teams", "/admin/teams", name="research", weight="2", klass="batch",
                 models="qwen3* llama3*", rpm="600")
    assert made.status_code == 303
    team = store.get_team("research")
    assert (team.weight, team.klass, team.models, team.rpm, team.tpm) == (2.0, "batch", ("qwen3*", "llama3*"), 600,
                                                                          None)
    key = _post(client, "/admin/keys", "/admin/keys", name="alice", scope="generate", team="research")
    assert key.status_code == 303 and store.get_key("alice").team == "research"
    page = client.get("/admin/teams").get_data(as_text=True)
    row = re.search(r'<tr data-team="research">.*?</tr>', page, re.S).group(0)
    assert '<td class="members">alice</td>' in row and "batch" in row
    edited = _post(client, "/admin/teams/research", "/admin/teams/research", weight="", klass="interactive",
                   models="", rpm="", tpm="5000")
    assert edited.status_code == 302
    team = store.get_team("research")
    assert (team.weight, team.klass, team.models, team.rpm, team.tpm) == (2.0, "interactive", (), None, 5000)
    assert [e.actor_kind for e in store.audit_trail()] == ["admin"] * 3


def test_a_key_cannot_be_put_in_a_team_that_does_not_exist(client, store):
    answer = _post(client, "/admin/keys", "/admin/keys", name="alice", scope="generate", team="nowhere")
    assert answer.status_code == 400 and "Not a valid choice" in answer.get_data(as_text=True)
    assert store.get_key("alice") is None


def test_a_team_with_keys_is_not_deleted_and_the_page_says_which_keys(client, store):
    store.create_team("research", by=TESTER)
    store.create_key("alice", by=TESTER, team="research")
    answer = _post(client, "/admin/teams/research/delete", "/admin/teams")
    assert answer.status_code == 302
    assert "team &#39;research&#39; still has keys: alice" in client.get("/admin/teams").get_data(as_text=True)
    store.delete_key("alice", by=TESTER)
    _post(client, "/admin/teams/research/delete", "/admin/teams")
    assert store.get_team("research") is None
    assert client.get("/admin/teams/research").status_code == 404


def test_a_bad_team_form_is_refused_with_the_reason(client, store):
    answer = _post(client, "/admin/teams", "/admin/teams", name="no spaces", weight="-1", klass="interactive")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "letters, digits" in text and "above 0" in text
    assert store.list_teams() == []
