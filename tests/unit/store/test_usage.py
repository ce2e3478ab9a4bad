from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.store import USAGE_FIELDS, StoreError
from ollama_proxy.store.usage import fit_usage_row

DAY1 = datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc)
DAY2 = datetime(2026, 3, 2, 0, 1, tzinfo=timezone.utc)


def row(ts, key="alice", model="llama3.2", prompt=10, completion=20, cached=None, **extra) -> dict:
    return {"ts": ts, "request_id": "r", "key_name": key, "surface": "openai", "model": model,
            "backend": "default", "upstream_model": model, "prompt_tokens": prompt,
            "completion_tokens": completion, "duration_ms": 12.5, "ttft_ms": 3.25, "status": 200,
            "aborted": False, "end_user": None, "cached_tokens": cached, "team": None, "gpu_seconds": None,
            "queue_ms": None, "measured": None, "key_id": None, "team_id": None, "cached_tokens_estimated": None,
            **extra}


def test_the_report_reads_a_periods_rows_and_a_team_keeps_its_own(store):
    store.add_usage([row(DAY1, team="research", gpu_seconds=1.5, queue_ms=20.0), row(DAY2, key="bob"),
                     row(DAY2 + timedelta(days=1), team="research")])
    figures = store.usage_figures(DAY1, DAY2 + timedelta(days=1))  # the end is not in it
    assert [(f["key_name"], f["team"], f["gpu_seconds"], f["queue_ms"]) for f in figures] == [
        ("alice", "research", 1.5, 20.0), ("bob", None, None, None)]
    assert set(figures[0]) == {"ts", "team", "key_name", "end_user", "model", "prompt_tokens", "completion_tokens",
                               "gpu_seconds", "ttft_ms", "queue_ms", "status", "key_id", "team_id"}
    assert len(store.usage_figures(DAY1, DAY2 + timedelta(days=2), team="research")) == 2
    assert [r["team"] for r in store.query_usage(team="research")] == ["research", "research"]


def test_a_team_keeps_the_rows_of_its_own_id_not_those_of_a_deleted_team_of_its_name(store):
    from tests.actors import TESTER

    old = store.create_team("research", by=TESTER).id
    store.add_usage([row(DAY1, request_id="old", team="research", team_id=old)])
    store.delete_team("research", by=TESTER)
    assert [r["request_id"] for r in store.query_usage(team="research")] == ["old"]  # no team of the name: by it
    new = store.create_team("research", by=TESTER).id
    assert new != old  # an id is never given again, on SQLite too (AUTOINCREMENT)
    store.add_usage([row(DAY2, request_id="new", team="research", team_id=new)])
    assert [r["request_id"] for r in store.query_usage(team="research")] == ["new"]
    assert [f["team_id"] for f in store.usage_figures(DAY1, DAY2 + timedelta(days=1), team="research")] == [new]


def test_usage_by_day_sums_a_keys_rows_by_its_id_and_tells_two_keys_of_one_name_apart(store):
    store.add_usage([row(DAY1, key_id=1), row(DAY1, key_id=1), row(DAY1, key_id=2), row(DAY1, key="bob")])
    assert [(r["key_id"], r["key_name"], r["requests"]) for r in store.usage_by_day(by="key")] == [
        (1, "alice", 2), (2, "alice", 1), (None, "bob", 1)]


def test_add_and_query_round_trip(store):
    store.add_usage([row(DAY1), row(DAY2, key="bob", model="qwen3:8b", aborted=True)])
    rows = store.query_usage()
    assert [r["key_name"] for r in rows] == ["alice", "bob"]
    assert {k: v for k, v in rows[0].items() if k != "id"} == row(DAY1)
    assert rows[1]["aborted"] is True and rows[1]["ts"] == DAY2
    assert set(rows[0]) == {"id", *USAGE_FIELDS}


@pytest.mark.parametrize("filters, expected", [
    ({"since": DAY2}, ["b", "c"]),
    ({"until": DAY2}, ["a"]),  # until is exclusive
    ({"since": DAY1, "until": DAY2 + timedelta(seconds=1)}, ["a", "b", "c"]),
    ({"key": "bob"}, ["c"]),
    ({"model": "qwen3:8b"}, ["b"]),
    ({"end_user": "ann"}, ["c"]),
    ({"key": "alice", "end_user": "ann"}, []),
    ({"limit": 2}, ["a", "b"]),
    ({"newest_first": True}, ["c", "b", "a"]),  # c after b at the same moment: the later row first
    ({"newest_first": True, "limit": 2}, ["c", "b"]),  # the limit keeps the newest
])
def test_query_filters(store, filters, expected):
    store.add_usage([row(DAY1, request_id="a"), row(DAY2, request_id="b", model="qwen3:8b"),
                     row(DAY2, request_id="c", key="bob", end_user="ann")])
    assert [r["request_id"] for r in store.query_usage(**filters)] == expected


def test_a_trusted_front_ends_rows_keep_the_end_user_they_name(store):
    store.add_usage([row(DAY1, key="webui", end_user="ann@lan"), row(DAY2, key="webui")])
    assert [r["end_user"] for r in store.query_usage()] == ["ann@lan", None]


def test_each_request_keeps_its_cached_prompt_tokens_summed_per_model(store):
    store.add_usage([row(DAY1, prompt=310, cached=3990), row(DAY1, prompt=4300, cached=0),
                     row(DAY1, model="qwen3:8b", cached=None), row(DAY1, model="qwen3:8b", cached=120)])
    assert [r["cached_tokens"] for r in store.query_usage()] == [3990, 0, None, 120]
    by_model = store.usage_by_day(by="model")
    assert [(r["model"], r["prompt_tokens"], r["cached_tokens"]) for r in by_model] == [("llama3.2", 4610, 3990),
                                                                                      ("qwen3:8b", 20, 120)]


def test_missing_fields_are_null_and_unknown_ones_refused(store):
    store.add_usage([{"ts": DAY1, "model": "m"}])
    assert store.query_usage()[0]["prompt_tokens"] is None
    with pytest.raises(StoreError, match="colour"):
        store.add_usage([{"ts": DAY1, "colour": "red"}])
    with pytest.raises(StoreError, match="ts"):
        store.add_usage([{"model": "m"}])
    store.add_usage([])
    assert len(store.query_usage()) == 1


def test_usage_by_day(store):
    store.add_usage([row(DAY1, cached=4000), row(DAY1, prompt=None, completion=None, status=502),
                     row(DAY2, key="bob", prompt=1, completion=2, status=429, cached=30), row(DAY2, status=None)])
    assert store.usage_by_day() == [
        {"day": "2026-03-01", "requests": 2, "prompt_tokens": 10, "completion_tokens": 20, "errors": 1,
         "cached_tokens": 4000},
        {"day": "2026-03-02", "requests": 2, "prompt_tokens": 11, "completion_tokens": 22, "errors": 1,
         "cached_tokens": 30},
    ]
    by_key = store.usage_by_day(since=DAY1, by="key")
    assert [(r["day"], r["key_name"], r["requests"]) for r in by_key] == [("2026-03-01", "alice", 2),
                                                                        ("2026-03-02", "alice", 1),
                                                                        ("2026-03-02", "bob", 1)]
    assert [r["cached_tokens"] for r in by_key] == [4000, 0, 30]  # none known: 0, as the other counts
    assert store.usage_by_day(model="nothing") == []
    with pytest.raises(StoreError):
        store.usage_by_day(by="colour")


@pytest.mark.parametrize("given, fitted", [
    ({"model": "llama3.2", "prompt_tokens": 12}, {"model": "llama3.2", "prompt_tokens": 12}),
    ({"model": "m" * 300}, {"model": "m" * 255}),  # the model column's length
    ({"request_id": "r" * 200, "key_name": "k" * 101, "surface": "s" * 17},
     {"request_id": "r" * 128, "key_name": "k" * 100, "surface": "s" * 16}),
    ({"model": "llama\x003.2"}, {"model": "llama3.2"}),  # NUL: PostgreSQL text cannot hold it
    ({"upstream_model": "a\ud800b\udfffc"}, {"upstream_model": "abc"}),  # lone surrogates: UTF-8 cannot
    ({"model": "\x00" * 10 + "m" * 300}, {"model": "m" * 255}),  # dropped first, then cut
    ({"model": "é" * 300}, {"model": "é" * 255}),  # characters, not bytes
    ({"model": "tab\there, bell\x07"}, {"model": "tab\there, bell\x07"}),  # PostgreSQL stores those
    ({"prompt_tokens": 2**40, "completion_tokens": -2**40, "status": 2**31},
     {"prompt_tokens": 2**31 - 1, "completion_tokens": -2**31, "status": 2**31 - 1}),
    ({"prompt_tokens": None, "aborted": True, "duration_ms": 1e12},
     {"prompt_tokens": None, "aborted": True, "duration_ms": 1e12}),
    ({"ts": DAY1}, {"ts": DAY1}),
    ({"end_user": "u" * 200 + "\x00"}, {"end_user": "u" * 128}),  # as long as a trusted front end may name
])
def test_fit_usage_row(given, fitted):
    assert fit_usage_row(given) == fitted


def test_a_fitted_row_is_stored_whatever_the_client_named(store):
    hostile = row(DAY1, model="=" + "m" * 300 + "\x00\ud800", request_id="r" * 500, prompt=2**40)
    store.add_usage([fit_usage_row(hostile)])
    stored = store.query_usage()[0]
    assert stored["model"] == ("=" + "m" * 300)[:255] and stored["request_id"] == "r" * 128
    assert stored["prompt_tokens"] == 2**31 - 1
