import csv
import io
import re
from datetime import date, datetime, timedelta, timezone

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


def add_requests(store, *request_ids):
    """Record one request a minute, in the order given, ending now."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    count = len(request_ids)
    store.add_usage([{"ts": now - timedelta(minutes=count - n), "request_id": rid, "key_name": "alice", "status": 200}
                     for n, rid in enumerate(request_ids)])


def listed_times(page: str) -> list[str]:
    table = re.search(r'<table id="usage-rows">.*?</table>', page, re.S).group(0)
    return re.findall(r"<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)</td>", table)


def test_the_usage_page_lists_the_newest_first(client, store):
    add_requests(store, "first", "second", "third")
    times = listed_times(client.get("/admin/usage").get_data(as_text=True))
    assert len(times) == 3 and times == sorted(times, reverse=True)


@pytest.mark.parametrize("app_sections", [{"admin": {"usage_rows": 2}}])
def test_a_long_list_keeps_the_newest_rows_and_the_export_keeps_the_oldest_first(client, store):
    add_requests(store, "first", "second", "third")
    page = client.get("/admin/usage").get_data(as_text=True)
    assert "The newest 2 rows are shown" in page
    newest = sorted(store.query_usage(), key=lambda row: row["ts"])[1:]
    assert listed_times(page) == [row["ts"].strftime("%Y-%m-%d %H:%M:%S") for row in reversed(newest)]
    export = client.get("/admin/usage.csv").get_data(as_text=True).splitlines()
    assert [line.split(",")[1] for line in export[1:]] == ["first", "second", "third"]


def test_the_export_writes_formula_like_names_as_text(client, store):
    now = datetime.now(timezone.utc)
    store.add_usage([{"ts": now, "request_id": "r", "key_name": "-2+3", "model": "=HYPERLINK(\"http://x\")",
                      "prompt_tokens": 4, "status": 200}])
    export = client.get("/admin/usage.csv").get_data(as_text=True)
    row = next(csv.DictReader(io.StringIO(export)))
    assert (row["key_name"], row["model"]) == ("'-2+3", "'=HYPERLINK(\"http://x\")")
    assert (row["prompt_tokens"], row["status"]) == ("4", "200")


def test_the_usage_page_shows_and_filters_the_end_user_and_the_export_has_it(client, store):
    now = datetime.now(timezone.utc)
    store.add_usage([{"ts": now, "request_id": "a", "key_name": "webui", "status": 200, "end_user": "ann@lan"},
                     {"ts": now, "request_id": "b", "key_name": "webui", "status": 200, "end_user": "bob"},
                     {"ts": now, "request_id": "c", "key_name": "script", "status": 200}])
    page = client.get("/admin/usage").get_data(as_text=True)
    assert "<th>End user</th>" in page and "<td>ann@lan</td></tr>" in page
    filtered = client.get("/admin/usage?end_user=ann@lan").get_data(as_text=True)
    assert len(listed_times(filtered)) == 1 and 'name="end_user" value="ann@lan"' in filtered
    assert "usage.csv?key=&amp;model=&amp;end_user=ann@lan&amp;" in filtered  # the export keeps the filter
    export = client.get("/admin/usage.csv").get_data(as_text=True)
    # The columns added since come after end_user: an export read by position keeps its columns.
    assert export.splitlines()[0].endswith(",aborted,cached_tokens,end_user,team,gpu_seconds,queue_ms,measured,"
                                           "key_id,team_id,cached_tokens_estimated")
    assert sorted(row["end_user"] for row in csv.DictReader(io.StringIO(export))) == ["", "ann@lan", "bob"]
    only_bob = client.get("/admin/usage.csv?end_user=bob").get_data(as_text=True).splitlines()
    assert [line.split(",")[1] for line in only_bob[1:]] == ["b"]


def test_usage_filters_read_the_end_user():
    assert usage_filters(MultiDict({"end_user": "ann"}))["end_user"] == "ann"
    assert usage_filters(MultiDict({"end_user": ""}))["end_user"] is None


def test_the_report_page_sums_the_period_per_team_with_its_budget_and_exports_it(client, store):
    from tests.actors import TESTER

    research = store.create_team("research", by=TESTER)
    store.set_budget("team", "research", period="month", unit="tokens", amount=1000, mode="soft", by=TESTER)
    now = datetime.now(timezone.utc)
    store.add_usage([{"ts": now, "key_name": "alice", "team": "research", "team_id": research.id, "prompt_tokens": 10,
                      "completion_tokens": 20, "gpu_seconds": 2.5, "ttft_ms": 120.0, "queue_ms": 40.0, "status": 200},
                     {"ts": now, "key_name": "script", "prompt_tokens": 1, "completion_tokens": 1, "status": 200}])
    page = client.get("/admin/usage/report?by=team&period=month").get_data(as_text=True)
    lines = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", page)
    assert lines == [("(none)", "1"), ("research", "1")]
    assert '<meter class="ok" min="0" max="1000.0" value="0.0">' in page and "0 of 1000 tokens" in page
    assert 'id="report-data"' in page and "chart-gpu" in page and "2.5" in page
    export = client.get("/admin/usage/report.csv?by=team&period=month").get_data(as_text=True)
    rows = {row["team"]: row for row in csv.DictReader(io.StringIO(export))}
    assert (rows["research"]["tokens"], rows["research"]["gpu_seconds"], rows["research"]["budget_tokens"]) == (
        "30", "2.5", "1000.0")
    assert (rows["research"]["ttft_p50_ms"], rows["research"]["queue_p95_ms"]) == ("120.0", "40.0")


def test_the_report_page_reads_a_past_period_and_falls_back_on_unknown_choices(client, store):
    store.add_usage([{"ts": datetime(2026, 2, 10, 12, tzinfo=timezone.utc), "key_name": "alice", "model": "m",
                      "status": 200}])
    page = client.get("/admin/usage/report?by=model&period=week&at=2026-02-11").get_data(as_text=True)
    assert "week of 2026-02-09" in page and "<tr><td>m</td>" in page
    assert 'href="/admin/usage/report?by=model&amp;period=week&amp;at=2026-02-08"' in page  # the week before
    fallback = client.get("/admin/usage/report?by=nonsense&period=year&at=yesterday")
    assert fallback.status_code == 200 and "by team · month" in fallback.get_data(as_text=True)


def test_a_team_admin_sees_the_usage_of_its_team_alone(tmp_path):
    from ollama_proxy.blueprints.admin.session import start_oidc_session
    from ollama_proxy.store import current_store
    from tests.actors import TESTER
    from tests.unit.blueprints.admin.conftest import admin_app

    app = admin_app(tmp_path, admin={"oidc": {"issuer": "https://sso.example.com/realms/acme", "client_id": "p"}})
    with app.app_context():
        store = current_store()
        made = {}
        for team in ("red", "blue"):
            made[team] = store.create_team(team, by=TESTER).id, store.create_key(f"{team}-key", team=team,
                                                                                 by=TESTER)[0].id
            store.set_budget("team", team, period="month", unit="tokens", amount=1000, by=TESTER)
        now = datetime.now(timezone.utc)
        store.add_usage([{"ts": now, "request_id": team, "key_name": f"{team}-key", "team": team, "status": 200,
                          "prompt_tokens": 7, "team_id": made[team][0], "key_id": made[team][1]}
                         for team in ("red", "blue")])
    client = app.test_client()
    with client.session_transaction("/admin") as session:
        start_oidc_session(session, app.config["SETTINGS"].admin.oidc, user="ann", subject="sub-ann",
                           role="team_admin", team="red", checked=datetime.now(timezone.utc).timestamp())
    rows = client.get("/admin/usage").get_data(as_text=True)
    assert "<td>red-key</td>" in rows and "blue-key" not in rows
    export = client.get("/admin/usage.csv").get_data(as_text=True)
    assert [row["request_id"] for row in csv.DictReader(io.StringIO(export))] == ["red"]
    report = client.get("/admin/usage/report?by=team").get_data(as_text=True)
    assert "<tr><td>red</td>" in report and "blue" not in report
    lines = list(csv.DictReader(io.StringIO(client.get("/admin/usage/report.csv?by=key").get_data(as_text=True))))
    assert [(line["key"], line["budget_tokens"]) for line in lines] == [("red-key", "")]
    with app.app_context():
        current_store().close()
