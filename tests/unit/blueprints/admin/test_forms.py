from datetime import date, datetime, timezone

import pytest

from ollama_proxy.blueprints.admin.forms import NewKeyForm, end_of_day, past_expiry, split_patterns
from ollama_proxy.blueprints.admin.models import check_alias


@pytest.mark.parametrize("text, patterns", [
    ("llama3* qwen3:8b", ["llama3*", "qwen3:8b"]),
    ("a,b,\n c", ["a", "b", "c"]),
    ("", []),
    (None, []),
])
def test_split_patterns(text, patterns):
    assert split_patterns(text) == patterns


def test_a_key_expiring_on_a_day_works_all_of_it():
    assert end_of_day(date(2026, 3, 1)) == datetime(2026, 3, 2, tzinfo=timezone.utc)  # as keys create --expires
    assert end_of_day(None) is None


TODAY = date(2027, 1, 31)


@pytest.mark.parametrize("day, kept, problem", [
    (None, None, None),  # never expires
    (TODAY, None, None),  # works through today
    (date(2030, 1, 1), None, None),
    (date(2027, 1, 30), None, "2027-01-30 is in the past: a key that expired before it was saved never works"),
    (date(2027, 1, 30), date(2027, 1, 30), None),  # an expired key's own day, kept while editing it
    (date(2027, 1, 29), date(2027, 1, 30), "2027-01-29 is in the past: a key that expired before it was saved "
                                           "never works"),
])
def test_past_expiry(day, kept, problem):
    assert past_expiry(day, kept, TODAY) == problem


KNOWN = {"llama3.2:latest", "qwen3:8b"}


@pytest.mark.parametrize("alias, target, known, problem", [
    ("gpt-4o", "llama3.2:latest", KNOWN, None),
    ("gpt-4o", "gpt-4o", KNOWN, "an alias cannot name itself"),
    ("qwen3:8b", "llama3.2:latest", KNOWN, "'qwen3:8b' is a model a backend serves: an alias would hide it"),
    ("gpt-4o", "mistral", KNOWN, "no backend serves 'mistral'"),
    ("gpt-4o", "mistral", set(), None),  # the listing failed: the target cannot be checked
])
def test_check_alias(alias, target, known, problem):
    assert check_alias(alias, target, known) == problem


@pytest.mark.parametrize("locked, fields", [(False, {"chat_log": True}), (True, {})])
def test_a_locked_chat_log_is_no_field_so_a_post_cannot_set_it(app, locked, fields):
    with app.test_request_context("/admin/keys", method="POST", data={"name": "x", "chat_log": "on"}):
        form = NewKeyForm(chat_log_locked=locked)
        assert (form.chat_log is None) is locked
        assert {key: value for key, value in form.store_fields().items() if key == "chat_log"} == fields
