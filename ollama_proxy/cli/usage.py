"""The ``ollama-proxy usage`` command: export the usage records as CSV or JSON on stdout, or, given ``--by`` or
``--period``, the usage report: per team, key, end user or model over a calendar period, budgets beside."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from ollama_proxy.cli.keys import expiry, table
from ollama_proxy.cli.store_access import open_for_command
from ollama_proxy.cli.text import printable
from ollama_proxy.config import CONFIG_ENV, ConfigError, load_settings
from ollama_proxy.observability.csv_export import write_csv
from ollama_proxy.observability.usage_report import BY, Period, csv_lines, read_report
from ollama_proxy.store import StoreError
from ollama_proxy.store.budgets import PERIODS
from ollama_proxy.store.usage import USAGE_FIELDS

END_USER = "end_user"
# The export's columns; --with-end-user adds the end user a trusted front end named, at the end.
COLUMNS = ("id", *(name for name in USAGE_FIELDS if name != END_USER))


def since(text: str) -> datetime:
    """Read ``--since``: a date (from the start of that UTC day) or an ISO date and time."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO date and time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _cell(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def write(rows: list[dict], form: str, out, columns: tuple[str, ...] = COLUMNS) -> None:
    """Write ``rows`` to ``out`` as CSV (a header, then one line each; spreadsheet-safe) or as one JSON array."""
    rows = [{column: _cell(row.get(column)) for column in columns} for row in rows]
    if form == "json":
        json.dump(rows, out, indent=1)  # ASCII: every control and format character escaped
        out.write("\n")
        return
    rows = [{column: printable(value) if isinstance(value, str) else value for column, value in row.items()}
            for row in rows]
    write_csv(out, columns, rows, lineterminator="\n")


def export(args) -> int:
    """Print the usage records that match the filters, oldest first; or the report, given --by or --period."""
    summary = args.by is not None or args.period is not None
    if summary and (args.since or args.until or args.key or args.model or args.end_user or args.with_end_user):
        print("ollama-proxy usage: --by and --period sum a whole period: give --at (and --team), not the "
              "export's filters", file=sys.stderr)
        return 2
    if not summary and args.format == "table":
        print("ollama-proxy usage: --format table is the report's: give --by or --period", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
        store = open_for_command(settings.store)
        try:
            if summary:
                period = Period.holding(args.period or "month", args.at or datetime.now(timezone.utc),
                                        ZoneInfo(settings.budgets.timezone))
                report = read_report(store, args.by or "key", period, team=args.team)
            else:
                rows = store.query_usage(since=args.since, until=args.until, key=args.key, model=args.model,
                                         end_user=args.end_user, team=args.team, limit=None)
        finally:
            store.close()
    except (ConfigError, StoreError) as exc:
        print(f"ollama-proxy usage: {exc}", file=sys.stderr)
        return 1
    if summary:
        write_report(report, args.format or "table", sys.stdout)
    else:
        write(rows, args.format or "csv", sys.stdout, (*COLUMNS, END_USER) if args.with_end_user else COLUMNS)
    return 0


def _figure(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _budget_cell(budgets: list[dict]) -> str:
    return "; ".join(f"{b['spent']:,.6g}/{b['amount']:,.6g} {b['unit'].replace('_', '-')} ({b['mode']})"
                     for b in sorted(budgets, key=lambda b: b["unit"])) or "-"


def write_report(report: dict, form: str, out) -> None:
    """Write the usage report as a table (a heading, one line per group, totals), CSV, or one JSON object."""
    if form == "json":
        json.dump(report, out, indent=1)
        out.write("\n")
        return
    columns, rows = csv_lines(report)
    if form == "csv":
        write_csv(out, columns, rows, lineterminator="\n")
        return
    header = (report["by"], "requests", "tokens", "gpu-seconds", "errors", "ttft p50 ms", "ttft p95 ms",
              "queue p95 ms", "budget (spent/amount)")
    figures = ("requests", "tokens", "gpu_seconds", "errors", "ttft_p50_ms", "ttft_p95_ms", "queue_p95_ms")
    lines = [(line["name"], *(_figure(line[name]) for name in figures), _budget_cell(line["budgets"]))
             for line in report["lines"]]
    lines.append(("total", *(_figure(report["totals"][name]) for name in figures), ""))
    out.write(f"{report['period']} {report['label']}: {report['start']} to {report['end']}\n")
    out.write(table(header, lines) + "\n")


def add_parser(commands) -> None:
    usage = commands.add_parser("usage", help="export usage records (CSV or JSON) to stdout")
    usage.add_argument("--since", type=since,
                       help="from this UTC date (YYYY-MM-DD) or ISO time, inclusive (default: the first record)")
    usage.add_argument("--until", type=expiry,
                       help="through this UTC date (YYYY-MM-DD), or up to an ISO time (default: now)")
    usage.add_argument("--key", help="only this key's (or token's) name (default: every key)")
    usage.add_argument("--model", help="only this model, as clients asked for it (default: every model)")
    usage.add_argument("--end-user", help="only the requests a trusted front end made for this end user")
    usage.add_argument("--with-end-user", action="store_true",
                       help="add an end_user column, last: the user a trusted front end named, if any")
    usage.add_argument("--team", help="only the requests of this team's keys")
    usage.add_argument("--by", choices=tuple(BY),
                       help="sum the usage of a period per team, key, end user or model, each budget beside "
                            "(default with --period: key)")
    usage.add_argument("--period", choices=PERIODS,
                       help="the calendar period summed, in budgets.timezone (default with --by: month)")
    usage.add_argument("--at", type=since,
                       help="with --by or --period: sum the period holding this date (default: the current one)")
    usage.add_argument("--format", choices=("csv", "json", "table"),
                       help="output format (default: csv; table with --by or --period)")
    usage.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
