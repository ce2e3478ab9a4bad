"""The ``ollama-proxy backup`` and ``restore`` commands: a consistent copy of the store, and putting one back.

What a backup holds and what it leaves out (the admin secret key, the rate-limit counters, the
configuration): docs/backup.md.
"""

from __future__ import annotations

import getpass
import os
import sys
import time

from ollama_proxy.cli.store_access import foreign_owner, sqlite_file
from ollama_proxy.config import CONFIG_ENV, ConfigError, StoreSettings, load_settings
from ollama_proxy.store import DatabaseError, StoreError, in_use, pg_backup
from ollama_proxy.store.backup import BackupError, online_backup, read_revision, restore, row_counts
from ollama_proxy.store.engine import open_engine
from ollama_proxy.store.migrate import HEAD_REVISION, known_revisions

LEFT_OUT = ("not in it: the admin secret key, the rate-limit counters, the configuration and environment files "
            "(docs/backup.md says why and how to keep them)")
# The tables a summary names, in the words of the admin page.
SUMMARY = (("api_keys", "keys"), ("teams", "teams"), ("budgets", "budgets"), ("usage", "usage rows"),
           ("audit", "audit entries"))


def add_parser(commands) -> None:
    backup = commands.add_parser("backup", help="write a consistent copy of the store to FILE, the service running")
    backup.add_argument("file", metavar="FILE", help="where to write it (replaced once the new copy is whole)")
    restore_ = commands.add_parser(
        "restore", help="make the store exactly what a backup FILE holds (the service stopped first)")
    restore_.add_argument("file", metavar="FILE", help="a file `ollama-proxy backup` wrote")
    for parser in (backup, restore_):
        parser.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV} or config/config.yaml)")


def run(args) -> int:
    """Carry out ``backup`` or ``restore`` on the configured store; one line on stderr for what goes wrong."""
    try:
        settings = load_settings(args.config).store
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "backup":
            print(back_up(settings, args.file))
        else:
            print(put_back(settings, args.file))
    except in_use.InUse as exc:
        print(f"error: {exc}: stop it first (systemctl stop ollama-proxy), restore, then start it", file=sys.stderr)
        return 1
    except (StoreError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def back_up(settings: StoreSettings, target: str) -> str:
    """Write the backup; return what was written, in a few lines."""
    target = os.path.abspath(target)
    database = sqlite_file(settings.url)
    if database is None:
        pg_backup.dump(settings.url, target)
        return f"backed up the PostgreSQL store to {target} (pg_dump, custom format)\n{LEFT_OUT}"
    _refuse_foreign_owner(database)
    try:
        online_backup(database, target, settings.busy_timeout)
    except PermissionError as exc:
        raise BackupError(f"cannot write {target} as user {_user()}: {exc.strerror} (write it under a directory "
                          f"{_user()} may write to, then move it)") from None
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror}") from None
    return (f"backed up {database} (migration {read_revision(target)}) to {target}: "
            f"{describe(row_counts(target))}\n{LEFT_OUT}")


def put_back(settings: StoreSettings, backup: str) -> str:
    """Restore ``backup`` into the configured store; return what was restored and what to do next."""
    backup = os.path.abspath(backup)
    database = sqlite_file(settings.url)
    if database is None:
        revision = _restore_postgres(settings, backup)
        where = "the PostgreSQL store"
    else:
        _refuse_foreign_owner(database)
        revision = _known(read_revision(backup))
        os.makedirs(os.path.dirname(database), exist_ok=True)
        with in_use.exclusive(database):
            restore(backup, database, settings.busy_timeout)
        if row_counts(backup) != row_counts(database):
            raise BackupError(f"the restored store {database} does not hold what {backup} holds")
        where = f"{database}: {describe(row_counts(database))}"
    later = "" if revision == HEAD_REVISION else (
        f"; at its start the service migrates it from {revision} to {HEAD_REVISION}, backing it up first")
    return f"restored {backup} (migration {revision}) into {where}\nstart the service now{later}"


def _restore_postgres(settings: StoreSettings, backup: str) -> str:
    if not os.path.isfile(backup):
        raise BackupError(f"there is no backup file at {backup}")
    tables = pg_backup.dumped_tables(backup)
    revision = pg_backup.dumped_revision(backup)
    if "alembic_version" not in tables or revision is None:
        raise BackupError(f"{backup} is not a pg_dump of the store (no migration revision in it)")
    _known(revision)
    engine = open_engine(settings.url, settings.busy_timeout, settings.network_timeout)
    try:
        sessions = _other_sessions_left(engine)
        if sessions:
            raise BackupError(f"{len(sessions)} other connection(s) to the database ({', '.join(sessions)}): stop "
                              f"the service on every instance first (systemctl stop ollama-proxy)")
        extra = pg_backup.extra_tables(engine, tables)
        if extra:
            raise BackupError(f"the database holds tables the backup does not ({', '.join(extra)}): restore into a "
                              f"new, empty database, or drop them first")
    finally:
        engine.dispose()
    pg_backup.restore(settings.url, backup)
    return revision


# A server ends a connection's backend a moment after its client closed it: a restore just after
# `systemctl stop ollama-proxy` waits this long for them to go before it refuses.
SESSIONS_ENDING_SECONDS = 2.0


def _other_sessions_left(engine) -> list[str]:
    """Return the other connections to the store's database still open after SESSIONS_ENDING_SECONDS."""
    deadline = time.monotonic() + SESSIONS_ENDING_SECONDS
    while (sessions := pg_backup.other_sessions(engine)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sessions


def _known(revision: str) -> str:
    if revision not in known_revisions():
        raise BackupError(f"the backup is at migration {revision}, which this version (migrations up to "
                          f"{HEAD_REVISION}) does not know: restore it with the version that made it")
    return revision


def _refuse_foreign_owner(database: str) -> None:
    owner = foreign_owner(database, os.geteuid())
    if owner:
        raise BackupError(f"the store {database} belongs to {owner}: run this as {owner} (the ollama-proxy command "
                          f"of INSTALL.md), since files root makes beside it are ones {owner} cannot open")


def describe(counts: dict[str, int]) -> str:
    """Say how many keys, teams, budgets, usage rows and audit entries a store holds."""
    return ", ".join(f"{counts.get(table, 0)} {words}" for table, words in SUMMARY)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
