from __future__ import annotations

from datetime import timedelta

import pytest

from ollama_proxy.durations import parse_duration, said


@pytest.mark.parametrize("text, span", [
    ("0", timedelta(0)),
    ("90s", timedelta(seconds=90)),
    ("30m", timedelta(minutes=30)),
    (" 24h ", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("2w", timedelta(weeks=2)),
    ("0h", timedelta(0)),
])
def test_parse_duration(text, span):
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "1", "-1h", "1.5h", "1y", "h", "1h30m", "2026-01-01"])
def test_parse_duration_says_none_for_what_is_no_duration(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("span, text", [
    (timedelta(0), "0"), (timedelta(seconds=90), "90s"), (timedelta(minutes=90), "90m"),
    (timedelta(hours=1), "1h"), (timedelta(days=2), "2d"), (timedelta(weeks=3), "3w"),
])
def test_said(span, text):
    assert said(span) == text
