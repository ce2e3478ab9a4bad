"""The keys pages through Flask's test client: the chat log choice, and a secret shown once."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from ollama_proxy.blueprints.admin.forms import chat_log_choice
from ollama_proxy.blueprints.admin.shown_secrets import CREATED
from tests.actors import TESTER
from tests.unit.blueprints.admin.conftest import csrf_token

SECRET = re.compile(r"op-[A-Za-z0-9_-]{20,}")


def create(client, name: str, **fields):
    form = {"csrf_token": csrf_token(client, "/admin/keys"), "name": name, "scope": "generate", **fields}
    return client.post("/admin/keys", data=form)


def chat_log_cell(page: str, name: str) -> str:
    row = re.search(rf'<tr data-key="{name}">.*?</tr>', page, re.S).group(0)
    cell = re.search(r'<td class="chat-log">(.*?)</td>', row, re.S).group(1)
    return re.sub(r"<[^>]+>", "", cell).strip()


def selected_chat_log(page: str) -> str:
    select = re.search(r'<select[^>]*name="chat_log".*?</select>', page, re.S).group(0)
    return re.search(r'<option selected value="([^"]+)"|<option value="([^"]+)" selected', select).group(0)


@pytest.mark.parametrize("choice, stored", [("global", None), ("on", True), ("off", False)])
def test_a_new_key_gets_the_chat_log_chosen(client, store, choice, stored):
    assert create(client, "alice", chat_log=choice).status_code == 303
    assert store.get_key("alice").chat_log is stored


def test_an_unknown_chat_log_choice_is_refused(client, store):
    answer = create(client, "alice", chat_log="sometimes")
    assert answer.status_code == 400 and "Not a valid choice" in answer.get_data(as_text=True)
    assert store.get_key("alice") is None


@pytest.mark.parametrize("before, choice, after", [
    (None, "on", True), (True, "off", False), (False, "global", None), (True, "on", True),
])
def test_editing_a_key_changes_its_chat_log(client, store, before, choice, after):
    store.create_key("alice", chat_log=before, by=TESTER)
    page = client.get("/admin/keys/alice").get_data(as_text=True)
    assert f'value="{chat_log_choice(before)}"' in selected_chat_log(page)
    answer = client.post("/admin/keys/alice", data={"csrf_token": csrf_token(client, "/admin/keys/alice"),
                                                    "scope": "generate", "chat_log": choice})
    assert answer.status_code == 302
    assert store.get_key("alice").chat_log is after


@pytest.mark.parametrize("app_sections, global_cell", [
    ({"chat_logs": {"enabled": False}}, "off (global)"),
    ({"chat_logs": {"enabled": True}}, "on (global)"),
])
def test_the_list_shows_each_keys_chat_log(client, store, global_cell):
    store.create_key("always", chat_log=True, by=TESTER)
    store.create_key("never", chat_log=False, by=TESTER)
    store.create_key("follows", by=TESTER)
    page = client.get("/admin/keys").get_data(as_text=True)
    assert [chat_log_cell(page, name) for name in ("always", "never", "follows")] == ["on", "off", global_cell]
    assert f"as chat_logs.enabled says (now {global_cell.split()[0]})" in page  # the form's first choice


def test_creating_redirects_and_the_secret_is_shown_once(client, store):
    answer = create(client, "alice")
    assert answer.status_code == 303 and answer.location == "/admin/keys/alice/created"
    with client.session_transaction("/admin") as session:
        held = dict(session[CREATED])
    shown = client.get(answer.location)
    secret = SECRET.search(shown.get_data(as_text=True)).group(0)
    assert store.find_key(secret).name == "alice"
    assert set(held) == {"name", "handle", "pad"} and secret not in str(held)  # the cookie is signed, not encrypted
    assert shown.headers["Cache-Control"] == "no-store"
    with client.session_transaction("/admin") as session:
        assert CREATED not in session

    reloaded = client.get(answer.location).get_data(as_text=True)
    assert "Key 'alice' created" in reloaded and "cannot be shown again" in reloaded
    assert SECRET.search(reloaded) is None
    assert [key.name for key in store.list_keys()] == ["alice"]


def test_a_refused_form_is_answered_in_place_without_a_redirect(client, store):
    answer = create(client, "no spaces")
    assert answer.status_code == 400 and "letters, digits" in answer.get_data(as_text=True)
    assert store.list_keys() == []


def test_the_created_page_of_an_unknown_key_is_404(client):
    assert client.get("/admin/keys/ghost/created").status_code == 404


@pytest.mark.parametrize("app_sections", [{"admin": {"secret_shown_within": 0.05}}])
def test_a_secret_not_shown_within_its_time_is_never_shown(client, store):
    answer = create(client, "alice")
    time.sleep(0.1)
    shown = client.get(answer.location).get_data(as_text=True)
    assert "cannot be shown again" in shown and SECRET.search(shown) is None


def test_a_new_key_expiring_in_the_past_is_refused_with_a_form_error(client, store):
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    answer = create(client, "late", expires=yesterday.isoformat())
    assert answer.status_code == 400
    assert f"{yesterday} is in the past" in answer.get_data(as_text=True)
    assert store.get_key("late") is None
    assert create(client, "today", expires=datetime.now(timezone.utc).date().isoformat()).status_code == 303


def edit(client, name: str, **fields):
    form = {"csrf_token": csrf_token(client, f"/admin/keys/{name}"), "scope": "generate", "chat_log": "global",
            **fields}
    return client.post(f"/admin/keys/{name}", data=form)


def test_editing_a_key_to_expire_in_the_past_is_refused(client, store):
    store.create_key("alice", by=TESTER)
    answer = edit(client, "alice", expires="2020-01-01", rpm="5")
    assert answer.status_code == 400 and "2020-01-01 is in the past" in answer.get_data(as_text=True)
    assert (store.get_key("alice").expires_at, store.get_key("alice").rpm) == (None, None)


def test_an_expired_key_can_be_edited_keeping_its_expiry(client, store):
    store.create_key("old", expires_at=datetime(2020, 1, 2, 23, 59, 59, tzinfo=timezone.utc), by=TESTER)
    answer = edit(client, "old", expires="2020-01-02", rpm="5")
    assert answer.status_code == 302
    assert store.get_key("old").rpm == 5 and store.get_key("old").expires_at.date() == date(2020, 1, 2)


@pytest.mark.parametrize("expires_at, shown", [
    (datetime(2999, 2, 1, tzinfo=timezone.utc), "2999-01-31"),  # keys create --expires 2999-01-31
    (datetime(2999, 1, 31, 23, 59, 59, tzinfo=timezone.utc), "2999-01-31"),  # what this form once stored
    (datetime(2999, 1, 31, 12, 30, tzinfo=timezone.utc), "2999-01-31"),  # keys create --expires 2999-01-31T12:30
])
def test_a_keys_expiry_shows_its_last_day_and_an_unchanged_form_keeps_it(client, store, expires_at, shown):
    store.create_key("alice", expires_at=expires_at, by=TESTER)
    assert f'name="expires" type="date" value="{shown}"' in client.get("/admin/keys/alice").get_data(as_text=True)
    assert edit(client, "alice", expires=shown, rpm="5").status_code == 302
    assert (store.get_key("alice").expires_at, store.get_key("alice").rpm) == (expires_at, 5)


def test_a_day_chosen_on_the_form_is_stored_as_the_cli_stores_it(client, store):
    store.create_key("alice", by=TESTER)
    assert edit(client, "alice", expires="2999-01-31").status_code == 302
    assert store.get_key("alice").expires_at == datetime(2999, 2, 1, tzinfo=timezone.utc)


def share_cells(page: str, name: str) -> list[str]:
    row = re.search(rf'<tr data-key="{name}">.*?</tr>', page, re.S).group(0)
    found = [re.search(rf'<span class="{cell}[^"]*">(.*?)</span>', row, re.S)
             for cell in ("weight", "class", "front-end")]
    return [cell.group(1) if cell else "" for cell in found]


def test_a_new_key_gets_the_weight_class_and_trust_chosen_and_the_list_shows_them(client, store):
    assert create(client, "nightly", weight="0.5", klass="batch").status_code == 303
    assert create(client, "webui", weight="2", trusted_frontend="y").status_code == 303
    assert create(client, "plain").status_code == 303
    shares = {key.name: (key.weight, key.klass, key.trusted_frontend) for key in store.list_keys()}
    assert shares == {"nightly": (0.5, "batch", False), "webui": (2.0, "interactive", True),
                      "plain": (1.0, "interactive", False)}
    page = client.get("/admin/keys").get_data(as_text=True)
    assert share_cells(page, "nightly") == ["0.5", "batch", ""]
    assert share_cells(page, "webui") == ["2", "interactive", "trusted front end"]


@pytest.mark.parametrize("weight", ["0", "-1", "1001", "nan", "heavy"])
def test_a_weight_out_of_bounds_is_refused(client, store, weight):
    answer = create(client, "greedy", weight=weight)
    assert answer.status_code == 400
    assert store.get_key("greedy") is None


def test_an_unknown_class_is_refused(client, store):
    assert create(client, "odd", klass="realtime").status_code == 400
    assert store.get_key("odd") is None


def test_editing_a_key_changes_its_share_and_an_empty_weight_keeps_it(client, store):
    store.create_key("alice", weight=3.0, trusted_frontend=True, by=TESTER)
    page = client.get("/admin/keys/alice").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="weight"[^>]*value="3.0"', page)
    assert re.search(r'<input[^>]*checked[^>]*name="trusted_frontend"|<input[^>]*name="trusted_frontend"[^>]*checked',
                     page)
    assert edit(client, "alice", weight="", klass="batch").status_code == 302  # the box unticked
    key = store.get_key("alice")
    assert (key.weight, key.klass, key.trusted_frontend) == (3.0, "batch", False)


def allows_cell(page: str, name: str) -> str:
    row = re.search(rf'<tr data-key="{name}">.*?</tr>', page, re.S).group(0)
    found = re.search(r'<span class="allows[^"]*">(.*?)</span>', row, re.S)
    return " ".join(found.group(1).split()) if found else ""


def test_a_new_key_gets_the_permissions_ticked_and_the_list_shows_them(client, store):
    assert create(client, "frontier", cloud="y").status_code == 303
    assert create(client, "searcher", web="y", cloud="y").status_code == 303
    assert create(client, "plain").status_code == 303
    allowed = {key.name: (key.web, key.cloud) for key in store.list_keys()}
    assert allowed == {"frontier": (False, True), "searcher": (True, True), "plain": (False, False)}
    page = client.get("/admin/keys").get_data(as_text=True)
    assert [allows_cell(page, name) for name in ("frontier", "searcher", "plain")] == [
        "allows cloud", "allows web, cloud", ""]


def test_editing_a_key_gives_and_takes_the_cloud_permission(client, store):
    store.create_key("alice", web=True, by=TESTER)
    assert edit(client, "alice", web="y", cloud="y").status_code == 302
    assert (store.get_key("alice").web, store.get_key("alice").cloud) == (True, True)
    page = client.get("/admin/keys/alice").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*name="cloud"|<input[^>]*name="cloud"[^>]*checked', page)
    assert edit(client, "alice", web="y").status_code == 302  # the box unticked
    assert (store.get_key("alice").web, store.get_key("alice").cloud) == (True, False)


def rotate(client, name: str, grace: str):
    token = csrf_token(client, f"/admin/keys/{name}")
    return client.post(f"/admin/keys/{name}/rotate", data={"csrf_token": token, "grace": grace})


def test_rotate_shows_the_new_secret_once_and_the_old_ones_end(client, store):
    key, old = store.create_key("alice", rpm=60, by=TESTER)
    page = client.get("/admin/keys/alice").get_data(as_text=True)
    assert 'id="rotate-key"' in page and 'name="grace"' in page
    answer = rotate(client, "alice", "1h")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/admin/keys/alice/rotated")
    shown = client.get("/admin/keys/alice/rotated").get_data(as_text=True)
    new = SECRET.search(shown.split('id="secret"', 1)[1]).group(0)
    assert "Key 'alice' rotated" in shown and "Its old secret works until" in shown
    assert store.find_key(new).id == store.find_key(old).id == key.id and store.get_key("alice").rpm == 60
    again = client.get("/admin/keys/alice/rotated").get_data(as_text=True)
    assert new not in again and "rotate the key on" in again
    assert "Its old secret works until" in client.get("/admin/keys/alice").get_data(as_text=True)


def test_rotate_without_grace_ends_the_old_secret_at_once(client, store):
    _, old = store.create_key("alice", by=TESTER)
    assert rotate(client, "alice", "0").status_code == 303
    assert store.find_key(old) is None
    assert "Its old secret no longer works" in client.get("/admin/keys/alice/rotated").get_data(as_text=True)


def test_rotate_refuses_a_grace_it_cannot_read(client, store):
    _, old = store.create_key("alice", by=TESTER)
    answer = rotate(client, "alice", "a while")
    assert answer.status_code == 400 and "not a duration (90s, 30m" in answer.get_data(as_text=True)
    assert store.find_key(old).name == "alice"


def test_a_created_keys_page_no_longer_says_to_delete_it_when_the_secret_is_lost(client, store):
    create(client, "alice")
    client.get("/admin/keys/alice/created")
    again = client.get("/admin/keys/alice/created").get_data(as_text=True)
    assert "rotate the key on" in again and "delete this key" not in again
