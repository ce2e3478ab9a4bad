"""Sum usage per team, key, end user or model over a calendar day, week or month, each budget beside it (pure).

The usage page's report and ``ollama-proxy usage --by ... --period ...`` print the
same figures: both call ``read_report``, which reads the period's rows
(``UsageStore.usage_figures``) and the budgets' standings; all else is pure.

A key's or team's rows are summed by its id (``usage.key_id``, ``usage.team_id``),
not its name: a key deleted and made again under its name is a line of its own.
Lines that share a name are told apart: the key (team) that holds the name now
keeps it bare, a deleted one says its id, ``alice (key #5, deleted)``, and rows
recorded before ids were (null) that are not the present one's say ``alice (an
earlier key)``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from ollama_proxy.store.budgets import PERIODS, period_bounds

# What a report is grouped by, as the CLI and the page name it, and the usage column that holds it.
BY = {"team": "team", "key": "key_name", "end-user": "end_user", "model": "model"}
BUDGETED = {"team": "team", "key": "key"}  # groupings whose members hold budgets: their holder kind
IDS = {"team": "team_id", "key": "key_id"}  # groupings summed by id: one name may have been two holders
NONE = "(none)"  # the group of the rows that name none: no team, no end user
TOP = 10  # groups drawn one by one in the charts; the rest are summed as "other"
FIGURES = ("requests", "prompt_tokens", "completion_tokens", "tokens", "gpu_seconds", "errors",
           "ttft_p50_ms", "ttft_p95_ms", "queue_p95_ms")
BUDGET_COLUMNS = ("budget_tokens", "budget_tokens_spent", "budget_gpu_seconds", "budget_gpu_seconds_spent")


@dataclass(frozen=True)
class Period:
    """One calendar day, week or month in a time zone: its bounds in UTC, and its buckets for the charts."""

    name: str
    start: datetime
    end: datetime
    zone: tzinfo

    @classmethod
    def holding(cls, name: str, moment: datetime, zone: tzinfo) -> Period:
        """The period of kind ``name`` that holds ``moment``, as budgets count it."""
        if name not in PERIODS:
            raise ValueError(f"a period is one of {', '.join(PERIODS)}, not {name!r}")
        return cls(name, *period_bounds(name, moment, zone), zone)

    @property
    def label(self) -> str:
        local = self.start.astimezone(self.zone)
        if self.name == "month":
            return local.strftime("%Y-%m")
        if self.name == "week":
            return f"week of {local.date().isoformat()}"
        return local.date().isoformat()

    def buckets(self) -> list[str]:
        """The charts' x axis: the hours of a day, the days of a week or month (local time)."""
        local = self.start.astimezone(self.zone).replace(tzinfo=None)
        if self.name == "day":
            return [f"{hour:02d}:00" for hour in range(24)]
        days = round((self.end - self.start) / timedelta(days=1))
        return [(local + timedelta(days=n)).date().isoformat() for n in range(days)]

    def bucket_of(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{local.hour:02d}:00" if self.name == "day" else local.date().isoformat()


def percentile(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when there are none): a value that was seen."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _figures(rows: list[dict]) -> dict:
    prompt = sum(row["prompt_tokens"] or 0 for row in rows)
    completion = sum(row["completion_tokens"] or 0 for row in rows)
    ttft = [row["ttft_ms"] for row in rows if row["ttft_ms"] is not None]
    queue = [row["queue_ms"] for row in rows if row["queue_ms"] is not None]
    gpu = sum((row["gpu_seconds"] or 0.0 for row in rows), 0.0)
    return {"requests": len(rows), "prompt_tokens": prompt, "completion_tokens": completion,
            "tokens": prompt + completion, "gpu_seconds": round(gpu, 3),
            "errors": sum(1 for row in rows if (row["status"] or 0) >= 400),
            "ttft_p50_ms": percentile(ttft, 50), "ttft_p95_ms": percentile(ttft, 95),
            "queue_p95_ms": percentile(queue, 95)}


Group = tuple  # (the holder's id or None, the name the rows give)


def _group(row: dict, by: str) -> Group:
    return (row.get(IDS[by]) if by in IDS else None, row[BY[by]] or NONE)


def labels(groups, kind: str, live: Mapping[str, int]) -> dict[Group, str]:
    """Name each group: by its name, unless another group has that name too. Then the holder of the name now
    (``live``: name -> id) keeps it, and the others say which they were (``alice (key #5, deleted)``, ``alice
    (an earlier key)`` for rows without an id)."""
    shared = Counter(name for _, name in groups)

    def label(ident, name: str) -> str:
        if shared[name] == 1 or ident == live.get(name):
            return name
        return f"{name} (an earlier {kind})" if ident is None else f"{name} ({kind} #{ident}, deleted)"
    return {(ident, name): label(ident, name) for ident, name in groups}


def labelled(rows: list[dict], by: str, live: Mapping[str, int]) -> list[dict]:
    """``rows`` (each with the grouping's id and name) with the name each one's group is shown by (``labels``)."""
    named = labels({_group(row, by) for row in rows}, BUDGETED.get(by, by), live)
    return [{**row, BY[by]: named[_group(row, by)]} for row in rows]


def _budgets_of(by: str, period: Period, standings: list[dict]) -> dict[str, list[dict]]:
    """Each holder's budgets of this kind of period, with what they spent in it."""
    kind = BUDGETED.get(by)
    found: dict[str, list[dict]] = defaultdict(list)
    for standing in standings:
        if standing["holder_kind"] == kind and standing["period"] == period.name:
            found[standing["holder"]].append({name: standing[name] for name in
                                              ("unit", "amount", "spent", "left", "mode", "refusals")})
    return found


def summarise(rows: list[dict], by: str, period: Period, standings: list[dict] = (),
              live: Mapping[str, int] | None = None) -> dict:
    """The report: one line per group (the busiest first, then by name), totals, and the charts' series.

    ``rows`` are the period's usage rows; ``standings`` the budgets in that period (``BudgetStore.standings``):
    a team's or key's budgets go on its line, and a holder with a budget and no requests gets a line too.
    ``live``: the id of each key (by "key") or team (by "team") there is now, by name: its line keeps the name.
    """
    if by not in BY:
        raise ValueError(f"a report is by {', '.join(BY)}, not {by!r}")
    live = live or {}
    grouped: dict[Group, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[_group(row, by)].append(row)
    budgets = _budgets_of(by, period, standings)
    # A budget's holder is there now: its budgets go on the line of its id, made if it has no rows.
    held = {(live.get(name) if by in IDS else None, name): found for name, found in budgets.items()}
    named = labels(set(grouped) | set(held), BUDGETED.get(by, by), live)
    lines = [{"name": named[group], **_figures(grouped.get(group, [])), "budgets": held.get(group, [])}
             for group in named]
    lines.sort(key=lambda line: (-line["requests"], line["name"]))
    return {"by": by, "period": period.name, "label": period.label, "start": period.start.isoformat(),
            "end": period.end.isoformat(), "lines": lines, "totals": _figures(rows),
            "series": _series([line["name"] for line in lines if line["requests"]],
                              {named[group]: found for group, found in grouped.items()}, period)}


def _series(order: list[str], grouped: dict[str, list[dict]], period: Period) -> dict:
    """Tokens and GPU-seconds per bucket for the busiest groups (``order``), the rest summed as "other"."""
    shown = order if len(order) <= TOP else [*order[:TOP - 1], "other"]
    buckets = period.buckets()
    index = {bucket: n for n, bucket in enumerate(buckets)}
    tokens = {name: [0] * len(buckets) for name in shown}
    gpu = {name: [0.0] * len(buckets) for name in shown}
    for name, rows in grouped.items():
        target = name if name in tokens else "other"
        for row in rows:
            n = index.get(period.bucket_of(row["ts"]))
            if n is not None:  # a day of 23 or 25 hours (daylight saving) has one bucket per hour of the clock
                tokens[target][n] += (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0)
                gpu[target][n] += row["gpu_seconds"] or 0.0
    return {"buckets": buckets, "tokens": tokens,
            "gpu_seconds": {name: [round(value, 3) for value in values] for name, values in gpu.items()}}


def csv_lines(report: dict) -> tuple[tuple[str, ...], list[dict]]:
    """The report as CSV columns and rows: the group, its figures, and its token and GPU-second budgets."""
    name_column = report["by"].replace("-", "_")
    columns = (name_column, *FIGURES, *BUDGET_COLUMNS)
    out = []
    for line in report["lines"]:
        row = {name_column: line["name"], **{figure: line[figure] for figure in FIGURES}}
        for budget in line["budgets"]:
            row[f"budget_{budget['unit']}"] = budget["amount"]
            row[f"budget_{budget['unit']}_spent"] = budget["spent"]
        out.append(row)
    return columns, out


def read_report(store, by: str, period: Period, team: str | None = None) -> dict:
    """Read the period's usage and budgets from ``store`` and sum them; ``team`` keeps that team's alone."""
    rows = store.usage_figures(period.start, period.end, team=team)
    return summarise(rows, by, period, store.standings(period.zone, period.start, team=team), live_ids(store, by))


def live_ids(store, by: str) -> dict[str, int]:
    """The id of each key (``by`` "key") or team ("team") there is now, by name; nothing for other groupings."""
    held = store.list_keys() if by == "key" else store.list_teams() if by == "team" else ()
    return {holder.name: holder.id for holder in held}
