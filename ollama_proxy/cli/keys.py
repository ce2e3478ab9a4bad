"""The ``ollama-proxy keys`` commands: create, list, enable, disable, rotate, allow, deny and delete managed keys."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timedelta, timezone

from ollama_proxy.access.membership import lapses
from ollama_proxy.cli.operator import operator
from ollama_proxy.cli.store_access import open_for_command
from ollama_proxy.cli.text import printable
from ollama_proxy.config import CONFIG_ENV, ConfigError, load_settings
from ollama_proxy.config.access import token_names
from ollama_proxy.durations import FORMS, parse_duration, said
from ollama_proxy.scheduler.decisions.fairness import CLASSES, MAX_WEIGHT
from ollama_proxy.store import ApiKey, DatabaseError, StoreError
from ollama_proxy.store.keys import SCOPES, expiry_after, last_day_before

LIST_COLUMNS = ("name", "prefix", "scope", "models", "limits", "allows", "expires", "enabled", "last used", "team",
                "owner")
# What --allow grants: web, Ollama's web search and fetch; cloud, the cloud models, run on ollama.com.
PERMISSIONS = ("web", "cloud")
PERMISSION_HELP = ("web: may use Ollama's web search and web fetch, which make the Ollama server reach the internet; "
                   "cloud: may use cloud models (*:cloud, *-cloud), which send the prompt to ollama.com under the "
                   "Ollama server's account")


def expiry(text: str) -> datetime:
    """Read ``--expires``: a date (the key works through that UTC day) or an ISO date and time."""
    try:
        if len(text) == 10:
            return expiry_after(date.fromisoformat(text))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO date and time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def future_expiry(text: str, now: datetime | None = None) -> datetime:
    """Read a new key's ``--expires`` as ``expiry`` does, refusing a moment gone by: the key would never work."""
    moment = expiry(text)
    if moment <= (now or datetime.now(timezone.utc)):
        raise argparse.ArgumentTypeError(f"{text} is in the past: a key that expired before it was made never works")
    return moment


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def grace(text: str) -> timedelta:
    """Read ``--grace``: how long a rotated key's old secret still works."""
    parsed = parse_duration(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not a duration ({FORMS}, or 0): {text!r}")
    return parsed


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_WEIGHT:
        raise argparse.ArgumentTypeError(f"not a weight above 0 and at most {MAX_WEIGHT:g}: {text!r}")
    return value


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _expiry(value: datetime | None) -> str:
    """Show an expiry as ``--expires`` took it: a day the key works through, or a moment."""
    if value is not None and value.time() == time():
        return last_day_before(value).isoformat()
    return _moment(value)


def _limits(key: ApiKey) -> str:
    return f"rpm {key.rpm or '-'}, tpm {key.tpm or '-'}"


def _allows(key: ApiKey) -> str:
    return ", ".join(p for p in PERMISSIONS if getattr(key, p)) or "-"


def _owner(key: ApiKey, lapsed: dict[str, str]) -> str:
    """Who made the key on My keys (their sign-on subject), and whether it lapsed with their membership."""
    return "-" if key.owner is None else key.owner + (" (lapsed)" if key.name in lapsed else "")


def key_row(key: ApiKey, lapsed: dict[str, str]) -> tuple[str, ...]:
    return (key.name, key.prefix, key.scope, ", ".join(key.models) or "*", _limits(key), _allows(key),
            _expiry(key.expires_at), "yes" if key.enabled else "no", _moment(key.last_used_at), key.team or "-",
            _owner(key, lapsed))


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Lay rows out in left-aligned columns under a header, every cell printable."""
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def create(store, args) -> int:
    key, secret = store.create_key(args.name, by=operator(), scope=args.scope, models=args.models or (), rpm=args.rpm,
                                   tpm=args.tpm, expires_at=args.expires, chat_log=args.chat_log,
                                   weight=args.weight, klass=args.klass, trusted_frontend=args.trusted_frontend,
                                   team=args.team, reserved=args.token_names,
                                   **{p: p in (args.allow or ()) for p in PERMISSIONS})
    allows = _allows(key)
    print(f"created key '{key.name}' ({key.prefix}...): scope {key.scope}, models {', '.join(key.models) or '*'}, "
          f"{_limits(key)}, expires {_expiry(key.expires_at)}, weight {key.weight:g}, class {key.klass}"
          + (", trusted front end" if key.trusted_frontend else "") + (f", allows {allows}" if allows != "-" else "")
          + (f", team {key.team} (its models, limits and class bound the key's)" if key.team else ""))
    print("the secret is shown once, below; only its hash is kept:")
    print(secret)  # alone on the last line: KEY=$(ollama-proxy keys create ... | tail -n1)
    return 0


def list_keys(store, args) -> int:
    """Print the keys; under them, why each key made on My keys that lapsed with its owner's membership is refused."""
    keys = store.list_keys()
    if not keys:
        print("no managed keys")
        return 0
    lapsed = lapses(keys, store.list_members(), datetime.now(timezone.utc), args.membership_max_age)
    print(table(LIST_COLUMNS, [key_row(k, lapsed) for k in keys]))
    for name, why in lapsed.items():
        print(printable(f"key '{name}' {why}"))
    return 0


def set_enabled(enabled: bool):
    def command(store, args) -> int:
        store.update_key(args.name, by=operator(), enabled=enabled)
        print(f"key '{args.name}' {'enabled' if enabled else 'disabled'}")
        return 0
    return command


def set_allowed(allowed: bool):
    def command(store, args) -> int:
        store.update_key(args.name, by=operator(), **{args.permission: allowed})
        print(f"key '{args.name}' {'may' if allowed else 'may no longer'} use {args.permission}")
        return 0
    return command


def rotate(store, args) -> int:
    """Give a key a new secret, printed on the last line as ``create`` prints one; the old one works ``--grace``."""
    key, secret = store.rotate_key(args.name, by=operator(), grace=args.grace)
    old = (f"works until {_moment(key.previous_until)} ({said(args.grace)} of grace)" if args.grace
           else "no longer works")
    print(f"rotated key '{key.name}' ({key.prefix}...): the same key, its settings, team, budgets and usage kept; "
          f"its old secret {old}")
    print("the new secret is shown once, below; only its hash is kept:")
    print(secret)  # alone on the last line: KEY=$(ollama-proxy keys rotate NAME | tail -n1)
    return 0


def delete(store, args) -> int:
    store.delete_key(args.name, by=operator())
    print(f"key '{args.name}' deleted")
    return 0


def add_parser(commands) -> None:
    """Add ``keys`` and its subcommands to the ``ollama-proxy`` parser."""
    keys = commands.add_parser("keys", help="manage API keys kept in the store")
    actions = keys.add_subparsers(dest="action", required=True)
    config = config_option()
    new = actions.add_parser("create", parents=[config], help="create a key and print its secret (last line)")
    new.add_argument("--name", required=True, help="the key's name, shown in logs, usage and the admin page")
    new.add_argument("--models", action="append", metavar="GLOB",
                     help="a model pattern the key may use, e.g. 'llama3*' (repeat; none = every model)")
    new.add_argument("--rpm", type=_positive, help="requests per minute (default: no limit)")
    new.add_argument("--tpm", type=_positive, help="tokens per minute, prompt and answer (default: no limit)")
    new.add_argument("--scope", choices=SCOPES, default="generate",
                     help="generate: inference and listings; manage: also pull, push, create, copy, delete "
                          "(default: generate)")
    new.add_argument("--expires", type=future_expiry, metavar="DATE",
                     help="YYYY-MM-DD (works through that day, UTC) or an ISO date and time; not in the past "
                          "(default: never expires)")
    new.add_argument("--chat-log", action=argparse.BooleanOptionalAction, default=None,
                     help="log this key's chats, or never (default: as chat_logs.enabled says)")
    new.add_argument("--weight", type=_weight, default=1.0,
                     help="the key's share of the GPUs against other keys' when they wait for the same servers "
                          "(default: 1)")
    new.add_argument("--class", dest="klass", choices=CLASSES, default="interactive",
                     help="interactive: goes ahead of batch work; batch: waits behind interactive work, never "
                          "longer than scheduling.batch_ageing (default: interactive)")
    new.add_argument("--trusted-frontend", action="store_true",
                     help="a front end (Open WebUI) that names its users (X-OpenWebUI-User-* headers, OpenAI's "
                          "user, Anthropic's metadata.user_id): each gets a fair share of its own and is named "
                          "in the usage records (default: off)")
    new.add_argument("--allow", action="append", choices=PERMISSIONS,
                     help=f"{PERMISSION_HELP} (repeat; default: none allowed)")
    new.add_argument("--team", help="the team the key belongs to (ollama-proxy teams create): the key never gets "
                                    "more than the team's models, limits and class (default: none)")
    new.set_defaults(run=create)
    actions.add_parser("list", parents=[config], help="list the keys").set_defaults(run=list_keys)
    for name, run, text in (("enable", set_enabled(True), "let a key work again"),
                            ("disable", set_enabled(False), "stop a key working, keeping it"),
                            ("delete", delete, "delete a key for good")):
        action = actions.add_parser(name, parents=[config], help=text)
        action.add_argument("name", help="the key's name (as keys list shows it)")
        action.set_defaults(run=run)
    _add_rotate(actions, config)
    for name, run, text in (("allow", set_allowed(True), "let a key use a permission (as create's --allow)"),
                            ("deny", set_allowed(False), "take a permission from a key")):
        action = actions.add_parser(name, parents=[config], help=text)
        action.add_argument("name", help="the key's name (as keys list shows it)")
        action.add_argument("permission", choices=PERMISSIONS, help=PERMISSION_HELP)
        action.set_defaults(run=run)


def _add_rotate(actions, config: argparse.ArgumentParser) -> None:
    rotation = actions.add_parser("rotate", parents=[config],
                                  help="give a key a new secret (last line), keeping the key: its settings, team, "
                                       "budgets and usage")
    rotation.add_argument("name", help="the key's name (as keys list shows it)")
    rotation.add_argument("--grace", type=grace, default=timedelta(0), metavar="DURATION",
                          help=f"how long the old secret still works ({FORMS}), time for clients to take the new "
                               "one (default: 0, refused at once)")
    rotation.set_defaults(run=rotate)


def config_option() -> argparse.ArgumentParser:
    """The ``--config`` every subcommand on the store takes (a parent parser)."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
    return config


def run(args) -> int:
    """Open the configured store and carry out one subcommand on it (``args.run``): ``keys``, ``teams``."""
    try:
        settings = load_settings(args.config)
        store = open_for_command(settings.store)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    except (StoreError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.token_names = token_names(settings)  # no key may take one (``keys create``)
    args.membership_max_age = settings.admin.oidc.membership_max_age  # a lapsed key is listed as such
    try:
        return args.run(store, args)
    except (StoreError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
