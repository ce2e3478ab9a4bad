"""When a single sign-on session asks the provider again, and what it does with the person's member row."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.identity.session_checks import ADOPT, ENDED, STALE, is_due, verdict
from ollama_proxy.store import Member

NOW = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)
RECHECK = 900.0


def member(confirmed: float, lost: bool = False) -> Member:
    at = NOW - timedelta(seconds=confirmed)
    return Member("u-mia", "mia", "member", "red", at, at, NOW if lost else None, "gone" if lost else None, True)


@pytest.mark.parametrize("checked, due", [
    (NOW.timestamp() - 10, False),
    (NOW.timestamp() - RECHECK, True),
    (NOW.timestamp() - RECHECK - 1, True),
    (None, True),  # a session from before re-checks
    ("1700000000", True),  # not a number: never trusted
])
def test_a_session_is_due_once_its_role_is_recheck_old(checked, due):
    assert is_due(checked, NOW.timestamp(), RECHECK) is due


@pytest.mark.parametrize("found, decided", [
    (member(confirmed=10), ADOPT),
    (member(confirmed=RECHECK - 1), ADOPT),
    (member(confirmed=RECHECK), STALE),
    (None, STALE),
    (member(confirmed=10, lost=True), ENDED),
])
def test_what_a_due_session_does_with_the_member_row(found, decided):
    assert verdict(found, NOW, RECHECK) == decided
