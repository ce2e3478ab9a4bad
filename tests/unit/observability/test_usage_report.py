"""The usage report: figures per group over a calendar period, its buckets, budgets beside, and its CSV."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from ollama_proxy.observability.usage_report import TOP, Period, csv_lines, labelled, labels, percentile, summarise

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NOVEMBER = Period.holding("month", datetime(2026, 11, 24, 12, tzinfo=UTC), UTC)


def row(ts=datetime(2026, 11, 3, 9, 30, tzinfo=UTC), team="research", key="alice", end_user=None, model="llama3.2",
        prompt=10, completion=20, gpu=0.5, ttft=100.0, queue=0.0, status=200, key_id=None, team_id=None) -> dict:
    return {"ts": ts, "team": team, "key_name": key, "end_user": end_user, "model": model, "prompt_tokens": prompt,
            "completion_tokens": completion, "gpu_seconds": gpu, "ttft_ms": ttft, "queue_ms": queue,
            "status": status, "key_id": key_id, "team_id": team_id}


@pytest.mark.parametrize("values, percent, expected", [
    ([], 95, None),
    ([7.0], 50, 7.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ([float(n) for n in range(1, 101)], 95, 95.0),
    ([float(n) for n in range(1, 21)], 95, 19.0),
    ([5.0, 1.0, 3.0], 100, 5.0),
])
def test_percentile_is_the_nearest_rank(values, percent, expected):
    assert percentile(values, percent) == expected


@pytest.mark.parametrize("name, moment, zone, start, end, label", [
    ("day", datetime(2026, 11, 24, 23, 30, tzinfo=UTC), BERLIN, "2026-11-24T23:00:00+00:00",
     "2026-11-25T23:00:00+00:00", "2026-11-25"),
    ("week", datetime(2026, 11, 24, 12, tzinfo=UTC), UTC, "2026-11-23T00:00:00+00:00",
     "2026-11-30T00:00:00+00:00", "week of 2026-11-23"),
    ("month", datetime(2026, 2, 10, tzinfo=UTC), UTC, "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00",
     "2026-02"),
])
def test_a_period_is_the_calendar_one_holding_the_moment_in_the_zone(name, moment, zone, start, end, label):
    period = Period.holding(name, moment, zone)
    assert (period.start.isoformat(), period.end.isoformat(), period.label) == (start, end, label)


def test_buckets_are_hours_of_a_day_and_days_of_a_week_or_month():
    day = Period.holding("day", datetime(2026, 11, 24, tzinfo=UTC), BERLIN)
    assert day.buckets()[0] == "00:00" and len(day.buckets()) == 24
    assert day.bucket_of(datetime(2026, 11, 24, 22, 15, tzinfo=UTC)) == "23:00"  # Berlin is an hour ahead
    assert len(NOVEMBER.buckets()) == 30 and NOVEMBER.buckets()[-1] == "2026-11-30"
    assert Period.holding("week", datetime(2026, 11, 24, tzinfo=UTC), UTC).buckets()[0] == "2026-11-23"


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="day, week, month"):
        Period.holding("year", datetime(2026, 11, 24, tzinfo=UTC), UTC)


def test_figures_per_group_the_busiest_first():
    rows = [row(key="alice", ttft=float(n), queue=float(10 * n)) for n in range(1, 21)]
    rows += [row(key="bob", prompt=None, completion=5, gpu=None, ttft=None, queue=None, status=429)]
    report = summarise(rows, "key", NOVEMBER)
    alice, bob = report["lines"]
    assert alice == {"name": "alice", "requests": 20, "prompt_tokens": 200, "completion_tokens": 400,
                     "tokens": 600, "gpu_seconds": 10.0, "errors": 0, "ttft_p50_ms": 10.0, "ttft_p95_ms": 19.0,
                     "queue_p95_ms": 190.0, "budgets": []}
    assert (bob["requests"], bob["tokens"], bob["gpu_seconds"], bob["errors"]) == (1, 5, 0.0, 1)
    assert (bob["ttft_p50_ms"], bob["queue_p95_ms"]) == (None, None)  # nothing measured: no figure, not 0
    assert report["totals"]["requests"] == 21 and report["totals"]["tokens"] == 605
    assert (report["period"], report["label"], report["by"]) == ("month", "2026-11", "key")


@pytest.mark.parametrize("by, names", [
    ("team", ["research", "(none)"]),
    ("end-user", ["ann", "(none)"]),
    ("model", ["llama3.2", "qwen3:8b"]),
])
def test_each_grouping_names_its_groups_and_the_rows_naming_none(by, names):
    rows = [row(end_user="ann"), row(end_user="ann"), row(team=None, model="qwen3:8b")]
    assert [line["name"] for line in summarise(rows, by, NOVEMBER)["lines"]] == names


def test_budgets_of_the_period_stand_beside_their_holders_even_without_requests():
    standings = [
        {"holder_kind": "team", "holder": "research", "period": "month", "unit": "gpu_seconds", "amount": 3600.0,
         "mode": "hard", "spent": 1.0, "left": 3599.0, "refusals": 0},
        {"holder_kind": "team", "holder": "research", "period": "day", "unit": "tokens", "amount": 100.0,
         "mode": "soft", "spent": 30.0, "left": 70.0, "refusals": 0},  # another period: not this report's
        {"holder_kind": "team", "holder": "idle", "period": "month", "unit": "tokens", "amount": 5000.0,
         "mode": "shadow", "spent": 0.0, "left": 5000.0, "refusals": 0},
        {"holder_kind": "key", "holder": "research", "period": "month", "unit": "tokens", "amount": 9.0,
         "mode": "hard", "spent": 0.0, "left": 9.0, "refusals": 0},  # a key of that name: not the team's
    ]
    report = summarise([row(), row()], "team", NOVEMBER, standings)
    research, idle = report["lines"]
    assert research["name"] == "research" and [b["amount"] for b in research["budgets"]] == [3600.0]
    assert (idle["name"], idle["requests"], idle["budgets"][0]["mode"]) == ("idle", 0, "shadow")
    assert [line["budgets"] for line in summarise([row()], "model", NOVEMBER, standings)["lines"]] == [[]]


def test_the_series_buckets_tokens_and_gpu_seconds_and_sums_the_tail_as_other():
    rows = [row(key=f"k{n:02d}", ts=datetime(2026, 11, 1 + n % 3, 8, tzinfo=UTC)) for n in range(TOP + 2)]
    series = summarise(rows, "key", NOVEMBER)["series"]
    assert len(series["tokens"]) == TOP and "other" in series["tokens"]
    assert sum(series["tokens"]["other"]) == 3 * 30  # the three least busy keys
    assert sum(sum(values) for values in series["tokens"].values()) == (TOP + 2) * 30
    assert series["gpu_seconds"]["k00"][0] == 0.5 and series["buckets"][0] == "2026-11-01"


def test_csv_lines_have_the_group_its_figures_and_its_budgets():
    standings = [{"holder_kind": "key", "holder": "alice", "period": "month", "unit": "tokens", "amount": 1000.0,
                  "mode": "hard", "spent": 30.0, "left": 970.0, "refusals": 0}]
    columns, lines = csv_lines(summarise([row()], "key", NOVEMBER, standings))
    assert columns[0] == "key" and columns[-4:] == ("budget_tokens", "budget_tokens_spent", "budget_gpu_seconds",
                                                    "budget_gpu_seconds_spent")
    assert lines == [{"key": "alice", "requests": 1, "prompt_tokens": 10, "completion_tokens": 20, "tokens": 30,
                      "gpu_seconds": 0.5, "errors": 0, "ttft_p50_ms": 100.0, "ttft_p95_ms": 100.0,
                      "queue_p95_ms": 0.0, "budget_tokens": 1000.0, "budget_tokens_spent": 30.0}]
    assert csv_lines(summarise([row(end_user="ann")], "end-user", NOVEMBER))[0][0] == "end_user"


@pytest.mark.parametrize("groups, live, expected", [
    ({(5, "alice")}, {}, {(5, "alice"): "alice"}),  # a name no other line has: as it is, deleted or not
    ({(5, "alice"), (12, "alice")}, {"alice": 12},
     {(5, "alice"): "alice (key #5, deleted)", (12, "alice"): "alice"}),
    ({(5, "alice"), (9, "alice")}, {},
     {(5, "alice"): "alice (key #5, deleted)", (9, "alice"): "alice (key #9, deleted)"}),
    ({(None, "alice"), (12, "alice")}, {"alice": 12},  # rows of before 0016 that were not the present key's
     {(None, "alice"): "alice (an earlier key)", (12, "alice"): "alice"}),
    ({(None, "webui"), (7, "webui")}, {},  # a token of the file (no id) beside a deleted key of its name
     {(None, "webui"): "webui", (7, "webui"): "webui (key #7, deleted)"}),
])
def test_lines_that_share_a_name_are_told_apart_the_present_holder_keeping_it(groups, live, expected):
    assert labels(groups, "key", live) == expected


def test_two_keys_and_two_teams_of_one_name_are_two_lines_the_budget_on_the_present_ones():
    rows = [row(key_id=5, team_id=1), row(key_id=5, team_id=1), row(key_id=12, team_id=2, prompt=1, completion=1)]
    standings = [{"holder_kind": kind, "holder": name, "period": "month", "unit": "tokens", "amount": 100.0,
                  "mode": "hard", "spent": 2.0, "left": 98.0, "refusals": 0}
                 for kind, name in (("key", "alice"), ("team", "research"))]
    by_key = summarise(rows, "key", NOVEMBER, standings, live={"alice": 12})
    assert [(line["name"], line["requests"], line["tokens"], len(line["budgets"])) for line in by_key["lines"]] == [
        ("alice (key #5, deleted)", 2, 60, 0), ("alice", 1, 2, 1)]
    assert set(by_key["series"]["tokens"]) == {"alice (key #5, deleted)", "alice"}
    by_team = summarise(rows, "team", NOVEMBER, standings, live={"research": 2})
    assert [(line["name"], line["requests"], len(line["budgets"])) for line in by_team["lines"]] == [
        ("research (team #1, deleted)", 2, 0), ("research", 1, 1)]
    fresh = summarise(rows[:2], "key", NOVEMBER, standings, live={"alice": 12})  # the new key has no rows yet
    assert [(line["name"], line["requests"], len(line["budgets"])) for line in fresh["lines"]] == [
        ("alice (key #5, deleted)", 2, 0), ("alice", 0, 1)]


def test_the_dashboards_rows_per_key_are_labelled_as_the_report_lines_are():
    rows = [{"day": "d1", "key_id": 5, "key_name": "alice", "requests": 1},
            {"day": "d1", "key_id": 12, "key_name": "alice", "requests": 2}]
    assert [r["key_name"] for r in labelled(rows, "key", {"alice": 12})] == ["alice (key #5, deleted)", "alice"]
