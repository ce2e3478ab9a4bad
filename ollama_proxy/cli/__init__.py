"""The ``ollama-proxy`` command: serve the proxy, check a configuration, manage keys, list usage and the audit trail."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ollama_proxy.cli import audit as cli_audit
from ollama_proxy.cli import backup as cli_backup
from ollama_proxy.cli import budgets as cli_budgets
from ollama_proxy.cli import keys as cli_keys
from ollama_proxy.cli import teams as cli_teams
from ollama_proxy.cli import usage as cli_usage
from ollama_proxy.cli.store_access import sqlite_file
from ollama_proxy.cli.version import ShowVersion
from ollama_proxy.config import (
    CONFIG_ENV,
    PROJECT_ROOT,
    ConfigError,
    OllamaServerSettings,
    ProviderSettings,
    config_path,
    load_settings,
)
from ollama_proxy.store import open_store

GUNICORN_CONF = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"


def describe_backend(backend: OllamaServerSettings | ProviderSettings) -> str:
    """Describe a backend in one line, naming where its key comes from, never the key."""
    if isinstance(backend, OllamaServerSettings):
        kind = "ollama"
        extra = f", at most {backend.max_concurrent} at once" if backend.max_concurrent else ""
        if backend.teams:
            extra += f", kept to team {', '.join(backend.teams)}" + (" (lent while idle)" if backend.lend_idle else "")
    else:
        kind = "openai"
        extra = f", key from ${backend.api_key_env}" if backend.api_key_env else ", no key"
    models = f", models {', '.join(backend.models)}" if backend.models else ""
    return f"{backend.name} ({kind}) {backend.base_url}{extra}{models}"


def check_config(path: str | None) -> int:
    """Load and check a configuration; print a summary or the problem."""
    # Here, not at the top: the rate limiter's package loads Flask and limits, which no other command needs.
    from ollama_proxy.access.ratelimit.sqlite import check_file, file_of

    try:
        settings = load_settings(path)
        if settings.ratelimit.storage_url.startswith("sqlite:"):
            check_file(file_of(settings.ratelimit.storage_url))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    unknown = unknown_teams(settings)
    if unknown:
        print(f"configuration error: backends[].teams names {', '.join(map(repr, unknown))}, which the store has "
              f"no team of (ollama-proxy teams create NAME)", file=sys.stderr)
        return 1
    auth = settings.auth
    print(f"configuration OK: {settings.source}")
    print(f"  upstream:   {settings.service.base_url}")
    for backend in settings.backends:
        print(f"  backend:    {describe_backend(backend)}")
    print(f"  tokens:     {len(auth.generate_tokens)} generate, {len(auth.manage_tokens)} manage")
    print(f"  logs:       {settings.logging.dir}")
    print(f"  CORS:       {', '.join(settings.cors.origins) or 'off'}")
    print(f"  store:      {settings.store.url.split('://', 1)[0]}")
    admin = settings.admin
    ways = ([f"user {admin.username}"] if admin.password_hash else []) + (
        [f"single sign-on with {admin.oidc.issuer}"] if admin.oidc.enabled else [])
    admin_state = f"on, {', '.join(ways)}" if admin.enabled else "off (make a hash: ollama-proxy admin-password)"
    print(f"  admin page: {admin_state}")
    if not auth.generate_tokens and not auth.manage_tokens:
        print("  note:       no tokens in the file: only managed keys (ollama-proxy keys create) get in")
    return 0


def unknown_teams(settings) -> list[str]:
    """The team names that ``backends[].teams`` gives and the store does not know (a store not made yet: all)."""
    named = sorted({team for server in settings.ollama_servers for team in server.teams} | set(settings.service.teams))
    if not named:
        return []
    path = sqlite_file(settings.store.url)
    if path is not None and not os.path.exists(path):
        return named  # no store yet, so no team: checked without making one
    store = open_store(settings.store, migrate=False)
    try:
        return [name for name in named if store.get_team(name) is None]
    finally:
        store.close()


MIN_PASSWORD_LENGTH = 8


def read_password(stdin=sys.stdin) -> str | None:
    """Ask for the password twice on a terminal, or read one line from a pipe."""
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("admin password: ")
    if first != getpass.getpass("again: "):
        print("the two passwords differ", file=sys.stderr)
        return None
    return first


def admin_password(stdin=sys.stdin) -> int:
    """Print a hash of the password read, for admin.password_hash."""
    password = read_password(stdin)
    if password is None:
        return 1
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"the password is too short: {MIN_PASSWORD_LENGTH} characters at least", file=sys.stderr)
        return 1
    from werkzeug.security import generate_password_hash  # here: no other command needs werkzeug

    print(generate_password_hash(password))
    return 0


def serve(config: str | None, bind: str | None, extra: list[str]) -> int:
    """Replace this process with gunicorn running the proxy (signals go straight to it)."""
    # gunicorn runs from the project root: a relative path is made absolute from where the user stands.
    os.environ[CONFIG_ENV] = os.path.abspath(config or config_path())
    if check_config(os.environ[CONFIG_ENV]) != 0:
        return 1
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--chdir", str(PROJECT_ROOT)]
    if bind:
        argv += ["-b", bind]
    sys.stdout.flush()  # execv drops whatever is still buffered
    os.execv(sys.executable, argv + extra + ["wsgi:app"])
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    """Return the ``ollama-proxy`` command line: its subcommands and their options, each with help."""
    parser = argparse.ArgumentParser(prog="ollama-proxy", description="A gateway in front of Ollama servers.")
    parser.add_argument("--version", action=ShowVersion)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the proxy under gunicorn with gevent workers")
    run.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
    run.add_argument("--bind", help="address to listen on (default: 127.0.0.1:8080)")
    run.add_argument("gunicorn_args", nargs=argparse.REMAINDER,
                     help="after --, more gunicorn options (e.g. -- --workers 4)")
    check = commands.add_parser("check-config", help="check a configuration file and print a summary")
    check.add_argument("path", nargs="?", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")
    cli_keys.add_parser(commands)
    cli_teams.add_parser(commands)
    cli_budgets.add_parser(commands)
    cli_usage.add_parser(commands)
    cli_audit.add_parser(commands)
    cli_backup.add_parser(commands)
    commands.add_parser("admin-password", help="hash a password for admin.password_hash (asks, or reads stdin)")
    return parser


# What a shell reports for a command stopped by SIGPIPE (128 + 13): `ollama-proxy usage | head`.
BROKEN_PIPE_STATUS = 141


def main(argv: list[str] | None = None) -> int:
    try:
        return run(build_parser().parse_args(argv))
    except BrokenPipeError:
        # The reader left (`| head`): stop quietly as Unix tools do. stdout goes to /dev/null so that
        # Python's own flush at exit does not raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` name."""
    if args.command in ("keys", "teams", "budgets"):
        return cli_keys.run(args)
    if args.command == "usage":
        return cli_usage.export(args)
    if args.command == "audit":
        return cli_audit.show(args)
    if args.command in ("backup", "restore"):
        return cli_backup.run(args)
    if args.command == "admin-password":
        return admin_password()
    if args.command == "serve":
        extra = [a for a in args.gunicorn_args if a != "--"]
        return serve(args.config, args.bind, extra)
    return check_config(args.path)


if __name__ == "__main__":
    sys.exit(main())
