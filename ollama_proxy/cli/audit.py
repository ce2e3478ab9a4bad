"""The ``ollama-proxy audit`` command: list the audit trail (who changed what, when, from where) on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from ollama_proxy.cli.keys import expiry, table
from ollama_proxy.cli.store_access import open_for_command
from ollama_proxy.cli.usage import since as moment_since
from ollama_proxy.cli.usage import write
from ollama_proxy.config import CONFIG_ENV, ConfigError, load_settings
from ollama_proxy.durations import parse_duration
from ollama_proxy.store import AuditEntry, DatabaseError, StoreError

COLUMNS = ("id", "ts", "actor", "actor_kind", "origin", "action", "target", "before", "after")
TABLE_COLUMNS = ("when", "who", "from", "action", "target", "change")


def since(text: str, now: datetime | None = None) -> datetime:
    """Read ``--since``: a time ago (``30m``, ``24h``, ``7d``, ``2w``), a UTC date, or an ISO date and time."""
    ago = parse_duration(text)
    if ago is None:
        return moment_since(text)
    return (now or datetime.now(timezone.utc)) - ago


def row(entry: AuditEntry) -> tuple[str, ...]:
    return (entry.ts.strftime("%Y-%m-%d %H:%M:%S UTC"), f"{entry.actor} ({entry.actor_kind})", entry.origin,
            entry.action, entry.target, entry.change)


def show(args) -> int:
    """Print the entries that match, oldest first."""
    try:
        store = open_for_command(load_settings(args.config).store)
        try:
            entries = store.audit_trail(args.since, args.until, limit=args.limit, newest_first=args.limit is not None)
        finally:
            store.close()
    except (ConfigError, StoreError, DatabaseError) as exc:
        print(f"ollama-proxy audit: {exc}", file=sys.stderr)
        return 1
    entries.sort(key=lambda entry: (entry.ts, entry.id))
    if args.format == "table":
        print(table(TABLE_COLUMNS, [row(e) for e in entries]) if entries else "no entries")
        return 0
    rows = [{**entry.__dict__} for entry in entries]
    if args.format == "csv":  # one cell each: the before and after as JSON
        rows = [{**r, "before": _json(r["before"]), "after": _json(r["after"])} for r in rows]
    write(rows, args.format, sys.stdout, COLUMNS)
    return 0


def _json(value) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", help="list the audit trail: who changed what, when, from where")
    audit.add_argument("--since", type=since,
                       help="from a time ago (30m, 24h, 7d, 2w), a UTC date (YYYY-MM-DD) or an ISO time "
                            "(default: the first entry)")
    audit.add_argument("--until", type=expiry,
                       help="through this UTC date (YYYY-MM-DD), or up to an ISO time (default: now)")
    audit.add_argument("--limit", type=_positive, help="only the newest N entries (default: all)")
    audit.add_argument("--format", choices=("table", "json", "csv"), default="table",
                       help="table: for reading; json: one array; csv: a header, then a line each, the values "
                            "before and after as JSON (default: table)")
    audit.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
    audit.set_defaults(run=show)
