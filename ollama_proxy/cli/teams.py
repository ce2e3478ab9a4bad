"""The ``ollama-proxy teams`` commands: create, list, edit and delete teams of keys."""

from __future__ import annotations

import argparse
import json
import sys

from ollama_proxy.cli.keys import _positive, _weight, config_option, table
from ollama_proxy.cli.operator import operator
from ollama_proxy.scheduler.decisions.fairness import CLASSES
from ollama_proxy.store import Team

LIST_COLUMNS = ("name", "weight", "class", "models", "limits", "keys")


def _limit(text: str) -> int | None:
    """Read an edit's ``--rpm``/``--tpm``: a positive whole number, or ``none`` for no limit."""
    return None if text.strip().lower() == "none" else _positive(text)


def _models(patterns: list[str] | None) -> list[str] | None:
    """The patterns given (``*`` alone: every model, stored as none), or None when not given."""
    if patterns is None:
        return None
    return [] if patterns == ["*"] else patterns


def _describe(team: Team) -> str:
    return (f"weight {team.weight:g}, class {team.klass}, models {', '.join(team.models) or '*'}, "
            f"rpm {team.rpm or '-'}, tpm {team.tpm or '-'} (its keys together)")


def _record(team: Team, keys: list[str]) -> dict:
    return {"name": team.name, "weight": team.weight, "class": team.klass, "models": list(team.models),
            "rpm": team.rpm, "tpm": team.tpm, "keys": keys, "created_at": team.created_at.isoformat()}


def create(store, args) -> int:
    team = store.create_team(args.name, by=operator(), weight=args.weight, klass=args.klass,
                             models=_models(args.models) or (), rpm=args.rpm, tpm=args.tpm)
    print(f"created team '{team.name}': {_describe(team)}")
    return 0


def list_teams(store, args) -> int:
    members: dict[str, list[str]] = {}
    for key in store.list_keys():
        if key.team is not None:
            members.setdefault(key.team, []).append(key.name)
    teams = store.list_teams()
    if args.format == "json":
        print(json.dumps([_record(team, members.get(team.name, [])) for team in teams], indent=1))
        return 0
    rows = [(t.name, f"{t.weight:g}", t.klass, ", ".join(t.models) or "*", f"rpm {t.rpm or '-'}, tpm {t.tpm or '-'}",
             ", ".join(members.get(t.name, [])) or "-") for t in teams]
    print(table(LIST_COLUMNS, rows) if rows else "no teams")
    return 0


def edit(store, args) -> int:
    fields = {name: value for name, value in (("weight", args.weight), ("klass", args.klass)) if value is not None}
    if args.models is not None:
        fields["models"] = _models(args.models)
    for limit in ("rpm", "tpm"):
        value = getattr(args, limit)
        if value is not ...:
            fields[limit] = value
    if not fields:
        print("nothing to change: give --weight, --class, --models, --rpm or --tpm", file=sys.stderr)
        return 2
    team = store.update_team(args.name, by=operator(), **fields)
    print(f"team '{team.name}': {_describe(team)}")
    return 0


def delete(store, args) -> int:
    store.delete_team(args.name, by=operator())
    print(f"team '{args.name}' deleted")
    return 0


def _share_options(parser: argparse.ArgumentParser, editing: bool) -> None:
    """The options ``create`` and ``edit`` share; left out of an edit, a field keeps its value."""
    default = "" if editing else " (default: {})"
    parser.add_argument("--weight", type=_weight, default=None if editing else 1.0,
                        help="the team's share of the GPUs against other teams' (and keys in no team) when they "
                             "wait for the same servers" + default.format(1))
    parser.add_argument("--class", dest="klass", choices=CLASSES, default=None if editing else "interactive",
                        help="batch: every key of the team waits behind interactive work" +
                             default.format("interactive"))
    parser.add_argument("--models", nargs="+", action="extend", metavar="GLOB",
                        help="the model patterns the team's keys may use, e.g. 'llama3*' ('*': every model)" +
                             ("; replaces the team's" if editing else default.format("every model")))
    for limit, what in (("--rpm", "requests"), ("--tpm", "tokens")):
        parser.add_argument(limit, type=_limit if editing else _positive, default=... if editing else None,
                            help=f"{what} per minute of all the team's keys together" +
                                 (", or 'none'" if editing else default.format("no limit")))


def add_parser(commands) -> None:
    """Add ``teams`` and its subcommands to the ``ollama-proxy`` parser."""
    teams = commands.add_parser("teams", help="manage teams: groups of keys with a share, models and limits")
    actions = teams.add_subparsers(dest="action", required=True)
    config = config_option()
    new = actions.add_parser("create", parents=[config], help="create a team")
    new.add_argument("name", help="the team's name, given to keys create --team")
    _share_options(new, editing=False)
    new.set_defaults(run=create)
    listed = actions.add_parser("list", parents=[config], help="list the teams and their keys")
    listed.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    listed.set_defaults(run=list_teams)
    changed = actions.add_parser("edit", parents=[config], help="change a team's weight, class, models or limits")
    changed.add_argument("name", help="the team's name (as teams list shows it)")
    _share_options(changed, editing=True)
    changed.set_defaults(run=edit)
    gone = actions.add_parser("delete", parents=[config], help="delete a team no key belongs to")
    gone.add_argument("name", help="the team's name (as teams list shows it)")
    gone.set_defaults(run=delete)
