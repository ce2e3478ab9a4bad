from datetime import date, datetime, timezone

import pytest
from werkzeug.datastructures import MultiDict

from ollama_proxy.blueprints.admin.usage import per_day, ranked, usage_filters


def day_row(day, requests=1, prompt=0, completion=0, errors=0, **group):
    return {"day": day, "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "errors": errors, **group}


def test_per_day_fills_the_days_without_usage_with_zeros():
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    series = per_day([day_row("2026-03-02", 4, 10, 20, 1)], days)
    assert series == {"days": days, "requests": [0, 4, 0], "prompt_tokens": [0, 10, 0],
                      "completion_tokens": [0, 20, 0], "errors": [0, 1, 0]}


@pytest.mark.parametrize("rows, top, expected", [
    ([], 3, {"names": [], "requests": [], "tokens": [], "errors": []}),
    ([day_row("d1", 1, 1, 1, model="a"), day_row("d2", 2, 1, 1, 1, model="a"), day_row("d1", 1, model="b")], 3,
     {"names": ["a", "b"], "requests": [3, 1], "tokens": [4, 0], "errors": [1, 0]}),
    ([day_row("d1", 5, model="a"), day_row("d1", 3, model="b"), day_row("d1", 2, model="c"),
      day_row("d1", 1, 0, 0, 1, model="d")], 3,
     {"names": ["a", "b", "other"], "requests": [5, 3, 3], "tokens": [0, 0, 0], "errors": [0, 0, 1]}),
    ([day_row("d1", 2, model=None), day_row("d1", 2, model="z")], 3,
     {"names": ["(none)", "z"], "requests": [2, 2], "tokens": [0, 0], "errors": [0, 0]}),
])
def test_ranked_sums_the_period_biggest_first_and_folds_the_tail(rows, top, expected):
    assert ranked(rows, "model", top) == expected


@pytest.mark.parametrize("args, expected", [
    ({"from": "2026-03-01", "to": "2026-03-02", "key": "alice", "model": "llama3.2"},
     (date(2026, 3, 1), datetime(2026, 3, 3, tzinfo=timezone.utc), "alice", "llama3.2")),
    ({"from": "not a date", "key": ""}, (None, None, None, None)),
])
def test_usage_filters(args, expected):
    filters = usage_filters(MultiDict(args))
    first, until, key, model = expected
    assert (filters["key"], filters["model"]) == (key, model)
    if first is not None:
        assert (filters["first"], filters["until"]) == (first, until)
    else:  # an unreadable date falls back to the last seven days
        assert (filters["last"] - filters["first"]).days == 6
        assert filters["since"] == datetime.combine(filters["first"], datetime.min.time(), timezone.utc)
