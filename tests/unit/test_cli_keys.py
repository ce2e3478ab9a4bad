from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.cli_keys import expiry, table

UTC = timezone.utc


@pytest.mark.parametrize("text, moment", [
    ("2027-01-31", datetime(2027, 2, 1, tzinfo=UTC)),  # works through the 31st
    ("2027-01-31T12:30", datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
    ("2027-01-31T12:30:00+02:00", datetime(2027, 1, 31, 12, 30, tzinfo=timezone(timedelta(hours=2)))),
    ("2027-01-31 08:00:00Z", datetime(2027, 1, 31, 8, 0, tzinfo=UTC)),
])
def test_expiry(text, moment):
    assert expiry(text) == moment


@pytest.mark.parametrize("text", ["tomorrow", "2027-13-01", "31/01/2027", ""])
def test_expiry_refuses_what_it_cannot_read(text):
    with pytest.raises(argparse.ArgumentTypeError):
        expiry(text)


def test_table_aligns_columns():
    assert table(("name", "scope"), [("alice", "generate"), ("bo", "manage")]).splitlines() == [
        "name   scope",
        "alice  generate",
        "bo     manage",
    ]
