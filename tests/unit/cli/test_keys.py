from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.cli.keys import expiry, future_expiry, table

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


NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, moment", [
    ("2027-01-31", datetime(2027, 2, 1, tzinfo=UTC)),  # today: the key works through it
    ("2027-01-31T12:00:01", datetime(2027, 1, 31, 12, 0, 1, tzinfo=UTC)),
    ("2027-01-31T14:30:00+02:00", datetime(2027, 1, 31, 14, 30, tzinfo=timezone(timedelta(hours=2)))),
    ("2030-06-01", datetime(2030, 6, 2, tzinfo=UTC)),
])
def test_future_expiry_reads_what_expiry_reads(text, moment):
    assert future_expiry(text, now=NOW) == moment


@pytest.mark.parametrize("text", [
    "2027-01-30",  # yesterday
    "2020-01-01",
    "2027-01-31T12:00:00",  # now: a key is expired at its expiry
    "2027-01-31T13:59:00+02:00",  # 11:59 UTC
])
def test_future_expiry_refuses_a_moment_gone_by(text):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"{text} is in the past")):
        future_expiry(text, now=NOW)


def test_future_expiry_reads_the_clock_when_not_told():
    with pytest.raises(argparse.ArgumentTypeError, match="in the past"):
        future_expiry("2020-01-01")
    assert future_expiry("2999-12-31") == datetime(3000, 1, 1, tzinfo=UTC)


def test_table_aligns_columns():
    assert table(("name", "scope"), [("alice", "generate"), ("bo", "manage")]).splitlines() == [
        "name   scope",
        "alice  generate",
        "bo     manage",
    ]
