"""Show usage: the dashboard's charts, the usage table with its filters, and its CSV export."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import Response, current_app, render_template, request

from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.blueprints.admin.budgets import budget_standings
from ollama_proxy.blueprints.admin.roles import team_scope
from ollama_proxy.observability.csv_export import write_csv
from ollama_proxy.observability.usage_report import BY, Period, csv_lines, labelled, live_ids, read_report
from ollama_proxy.store import USAGE_FIELDS, current_store
from ollama_proxy.store.budgets import PERIODS

TOP = 10  # models and keys drawn one by one in the dashboard's bar charts; the rest are summed as "other"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def per_day(rows: list[dict], days: list[str]) -> dict:
    """Spread ``usage_by_day`` rows over every day of the period, zeros where nothing happened."""
    found = {row["day"]: row for row in rows}
    series = {name: [] for name in ("requests", "prompt_tokens", "completion_tokens", "errors")}
    for day in days:
        for name, values in series.items():
            values.append(found.get(day, {}).get(name, 0))
    return {"days": days, **series}


def ranked(rows: list[dict], column: str, top: int = TOP) -> dict:
    """Sum ``usage_by_day`` rows grouped by ``column`` over the period; the biggest first, the tail as "other"."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        total = totals[row[column] or "(none)"]
        total[0] += row["requests"]
        total[1] += row["prompt_tokens"] + row["completion_tokens"]
        total[2] += row["errors"]
    order = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    if len(order) > top:
        rest = [sum(values[i] for _, values in order[top - 1:]) for i in range(3)]
        order = order[:top - 1] + [("other", rest)]
    return {"names": [name for name, _ in order], "requests": [v[0] for _, v in order],
            "tokens": [v[1] for _, v in order], "errors": [v[2] for _, v in order]}


@bp.get("")
def dashboard():
    """Chart requests, tokens and errors per day, per model and per key over the last days."""
    period = current_app.config["SETTINGS"].admin.dashboard_days
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=period - 1)
    store = current_store()
    since = _midnight(first)
    data = {"daily": per_day(store.usage_by_day(since=since), _days(first, today)),
            "by_model": ranked(store.usage_by_day(since=since, by="model"), "model"),
            # Summed by key id: a key deleted and made again under its name is a bar of its own.
            "by_key": ranked(labelled(store.usage_by_day(since=since, by="key"), "key", live_ids(store, "key")),
                             "key_name")}
    daily = data["daily"]
    totals = {"requests": sum(daily["requests"]), "errors": sum(daily["errors"]),
              "tokens": sum(daily["prompt_tokens"]) + sum(daily["completion_tokens"])}
    spent_soft = [s for s in budget_standings() if s["mode"] == "soft" and s["left"] == 0]
    return render_template("admin/dashboard.html", data=data, totals=totals, period=period, spent_soft=spent_soft)


def usage_filters(args) -> dict:
    """Read the usage page's filters: key, model, end user, and a from/to date range (both days included)."""
    today = datetime.now(timezone.utc).date()
    first = _date(args.get("from")) or today - timedelta(days=6)
    last = _date(args.get("to")) or today
    return {"key": args.get("key") or None, "model": args.get("model") or None,
            "end_user": args.get("end_user") or None,
            "since": _midnight(first), "until": _midnight(last) + timedelta(days=1),
            "first": first, "last": last}


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _query(filters: dict, limit: int, newest_first: bool = False) -> list[dict]:
    return current_store().query_usage(since=filters["since"], until=filters["until"], key=filters["key"],
                                       model=filters["model"], end_user=filters["end_user"], limit=limit,
                                       newest_first=newest_first, team=team_scope())


@bp.get("/usage")
def usage():
    """List usage rows, newest first, filtered by key, model, end user and dates (a team admin's team's alone)."""
    filters = usage_filters(request.args)
    limit = current_app.config["SETTINGS"].admin.usage_rows
    rows = _query(filters, limit + 1, newest_first=True)
    auth = current_app.config["SETTINGS"].auth
    team = team_scope()
    # Usage is per principal: the managed keys and the configuration file's named tokens (a team's keys alone).
    keys = sorted({key.name for key in current_store().list_keys() if team is None or key.team == team}
                  | ({token.name for token in auth.generate_tokens + auth.manage_tokens} if team is None else set()))
    return render_template("admin/usage.html", rows=rows[:limit], truncated=len(rows) > limit, limit=limit,
                           filters=filters, keys=keys)


@bp.get("/usage.csv")
def usage_csv():
    """Export the filtered usage rows as CSV (spreadsheet-safe), oldest first."""
    filters = usage_filters(request.args)
    rows = _query(filters, current_app.config["SETTINGS"].admin.export_rows)
    out = io.StringIO()
    write_csv(out, USAGE_FIELDS, ({**row, "ts": row["ts"].isoformat()} for row in rows))
    name = f"usage-{filters['first']}-{filters['last']}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def report_choice(args) -> tuple[str, Period]:
    """Read the report's grouping, period and day (an unknown value: the default), as the page offers them."""
    by = args.get("by") if args.get("by") in BY else "team"
    name = args.get("period") if args.get("period") in PERIODS else "month"
    day = _date(args.get("at"))
    zone = ZoneInfo(current_app.config["SETTINGS"].budgets.timezone)
    moment = datetime.combine(day, datetime.min.time(), zone) if day else datetime.now(timezone.utc)
    return by, Period.holding(name, moment, zone)


@bp.get("/usage/report")
def usage_report():
    """Sum a calendar period's usage per team, key, end user or model, each budget beside what was used."""
    by, period = report_choice(request.args)
    report = read_report(current_store(), by, period, team=team_scope())
    at = period.start.astimezone(period.zone).date()
    return render_template("admin/usage_report.html", report=report, by_choices=tuple(BY), periods=PERIODS,
                           at=at, zone=current_app.config["SETTINGS"].budgets.timezone,
                           previous=(at - timedelta(days=1)).isoformat(),
                           following=period.end.astimezone(period.zone).date().isoformat())


@bp.get("/usage/report.csv")
def usage_report_csv():
    """The usage report as CSV (spreadsheet-safe)."""
    by, period = report_choice(request.args)
    columns, rows = csv_lines(read_report(current_store(), by, period, team=team_scope()))
    out = io.StringIO()
    write_csv(out, columns, rows)
    name = f"usage-by-{by}-{period.name}-{period.label.replace(' ', '-')}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
