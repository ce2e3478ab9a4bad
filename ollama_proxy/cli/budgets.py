"""The ``ollama-proxy budgets`` commands: set, list and clear a team's, a key's or a person's budgets per period."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ollama_proxy.cli.keys import config_option, table
from ollama_proxy.cli.operator import operator
from ollama_proxy.config import load_settings
from ollama_proxy.store.budgets import MODES, PERIODS

LIST_COLUMNS = ("holder", "period", "budget", "mode", "spent", "left", "resets", "would-be refusals")


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"not a number, 0 or more: {text!r}")
    return value


def _holder(args) -> tuple[str, str]:
    return next((kind, name) for kind, name in (("team", args.team), ("key", args.key), ("person", args.person))
                if name is not None)


def _unit(args) -> tuple[str | None, float | None]:
    if args.tokens is not None:
        return "tokens", args.tokens
    if args.gpu_seconds is not None:
        return "gpu_seconds", args.gpu_seconds
    return None, None


def set_budget(store, args) -> int:
    holder_kind, holder = _holder(args)
    unit, amount = _unit(args)
    budget = store.set_budget(holder_kind, holder, period=args.period, unit=unit, amount=amount, mode=args.mode,
                              by=operator())
    print(f"{budget.named}: {budget.amount:g} {budget.unit.replace('_', '-')} a {budget.period}, {budget.mode}")
    return 0


def list_budgets(store, args) -> int:
    zone = ZoneInfo(load_settings(args.config).budgets.timezone)
    rows = store.standings(zone, datetime.now(timezone.utc))
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    unit = {"tokens": "tokens", "gpu_seconds": "GPU-s"}
    lines = [(f"{r['holder_kind']} {r['holder']}", r["period"], f"{r['amount']:g} {unit[r['unit']]}", r["mode"],
              f"{r['spent']:g}", f"{r['left']:g}", datetime.fromisoformat(r["resets"]).astimezone(zone).strftime(
                  "%Y-%m-%d %H:%M %Z"), str(r["refusals"]) if r["mode"] == "shadow" else "-") for r in rows]
    print(table(LIST_COLUMNS, lines) if lines else "no budgets")
    return 0


def clear(store, args) -> int:
    holder_kind, holder = _holder(args)
    unit, _ = _unit(args)
    gone = store.clear_budgets(holder_kind, holder, period=args.period, unit=unit, by=operator())
    print(f"{holder_kind} '{holder}': {gone} budget{'s' if gone != 1 else ''} cleared")
    return 0


def _holder_options(parser: argparse.ArgumentParser) -> None:
    holder = parser.add_mutually_exclusive_group(required=True)
    holder.add_argument("--team", help="the team's budget: all its keys together")
    holder.add_argument("--key", help="the key's own budget")
    holder.add_argument("--person", metavar="SUBJECT",
                        help="a person's budget: every key they own (made on My keys), together")


def add_parser(commands) -> None:
    """Add ``budgets`` and its subcommands to the ``ollama-proxy`` parser."""
    budgets = commands.add_parser("budgets", help="set, list and clear budgets of tokens or GPU-seconds per period")
    actions = budgets.add_subparsers(dest="action", required=True)
    config = config_option()
    new = actions.add_parser("set", parents=[config], help="give a team, a key or a person a budget (replacing "
                                                            "the one it had for that period and unit)")
    _holder_options(new)
    new.add_argument("--period", choices=PERIODS, required=True,
                     help="a calendar day, week (from Monday) or month, in budgets.timezone")
    amount = new.add_mutually_exclusive_group(required=True)
    amount.add_argument("--tokens", type=_amount, help="prompt plus answer tokens, as Ollama or the provider counts")
    amount.add_argument("--gpu-seconds", type=_amount, help="Ollama's total_duration (providers count tokens only)")
    new.add_argument("--mode", choices=MODES, default="hard",
                     help="hard: refuse requests once spent (429); soft: serve them with X-Budget-Exceeded and a "
                          "warning; shadow: serve them, counting what would have been refused (default: hard)")
    new.set_defaults(run=set_budget)
    listed = actions.add_parser("list", parents=[config], help="list the budgets, what each spent this period and "
                                                               "what is left")
    listed.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    listed.set_defaults(run=list_budgets)
    gone = actions.add_parser("clear", parents=[config], help="remove a team's, a key's or a person's budgets "
                                                              "(of one period, or one unit, if given)")
    _holder_options(gone)
    gone.add_argument("--period", choices=PERIODS, help="only the budget of this period")
    unit = gone.add_mutually_exclusive_group()
    unit.add_argument("--tokens", action="store_const", const=0.0, help="only the budget in tokens")
    unit.add_argument("--gpu-seconds", action="store_const", const=0.0, help="only the budget in GPU-seconds")
    gone.set_defaults(run=clear)
