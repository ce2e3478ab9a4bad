"""The ``ollama-proxy usage`` command: export the usage records as CSV or JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timezone

from ollama_proxy.cli.keys import expiry
from ollama_proxy.config import CONFIG_ENV, ConfigError, load_settings
from ollama_proxy.observability.csv_export import write_csv
from ollama_proxy.store import StoreError, open_store
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
        json.dump(rows, out, indent=1)
        out.write("\n")
        return
    write_csv(out, columns, rows, lineterminator="\n")


def export(args) -> int:
    """Print the usage records that match the filters, oldest first."""
    try:
        settings = load_settings(args.config)
        store = open_store(settings.store)
        try:
            rows = store.query_usage(since=args.since, until=args.until, key=args.key, model=args.model,
                                     end_user=args.end_user, limit=None)
        finally:
            store.close()
    except (ConfigError, StoreError) as exc:
        print(f"ollama-proxy usage: {exc}", file=sys.stderr)
        return 1
    write(rows, args.format, sys.stdout, (*COLUMNS, END_USER) if args.with_end_user else COLUMNS)
    return 0


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
    usage.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default: csv)")
    usage.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
