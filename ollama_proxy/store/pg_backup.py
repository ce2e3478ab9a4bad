"""Back up and restore a PostgreSQL store with PostgreSQL's own tools, ``pg_dump`` and ``pg_restore``.

``pg_dump`` reads one snapshot in a transaction of its own, so its dump is consistent while the service
writes. The custom format (``--format=custom``) is compressed and restores with ``pg_restore`` alone.
The password travels in the environment (``PGPASSWORD``), never on a command line that ``ps`` shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from ollama_proxy.store.backup import BackupError

CLIENT_PACKAGE = "postgresql-client (Debian and Ubuntu), of the server's major version or newer"


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """Return the connection URI for libpq without its password, and the environment that carries it."""
    parsed = make_url(url)
    password = parsed.password
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    environment = {"PGPASSWORD": str(password)} if password is not None else {}
    return uri, environment


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install {CLIENT_PACKAGE}, then run this again")
    return found


def _run(argv: list[str], environment: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, env={**os.environ, **environment}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = next((line for line in done.stderr.splitlines() if line.strip()), f"exit status {done.returncode}")
        raise BackupError(f"{what} failed: {reason}")
    return done.stdout


def dump(url: str, target: str) -> None:
    """Write a custom-format dump of the database at ``url`` to ``target`` (replacing it once it is whole)."""
    uri, environment = libpq_target(url)
    partial = f"{target}.partial-{os.getpid()}"
    try:
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={uri}"],
             environment, "pg_dump")
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def dumped_tables(backup: str) -> set[str]:
    """Return the names of the tables a custom-format dump holds, as ``pg_restore --list`` reads it."""
    listing = _run([_tool("pg_restore"), "--list", backup], {}, f"reading {backup}")
    # "215; 1259 16385 TABLE public api_keys postgres"
    return {match.group(1) for match in re.finditer(r"^\d+; \d+ \d+ TABLE \S+ (\S+) ", listing, re.MULTILINE)}


def dumped_revision(backup: str) -> str | None:
    """Return the migration revision a dump holds, read from its ``alembic_version`` rows without restoring."""
    script = _run([_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", backup], {},
                  f"reading {backup}")
    # "COPY public.alembic_version (version_num) FROM stdin;\n0018\n\\."
    match = re.search(r"^COPY \S*alembic_version .*FROM stdin;\n([^\n\\]+)\n", script, re.MULTILINE)
    return match.group(1) if match else None


def other_sessions(engine: Engine) -> list[str]:
    """Describe the other connections to the store's database (the service's pools keep theirs open)."""
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT coalesce(nullif(application_name, ''), 'a client') || ' from ' || "
            "coalesce(host(client_addr), 'a local socket') FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalars().all()
    return sorted(rows)


def extra_tables(engine: Engine, backup_tables: set[str]) -> list[str]:
    """Return the tables of the database's schema that the dump does not hold (a restore would leave them)."""
    with engine.connect() as connection:
        names = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars().all()
    return sorted(set(names) - backup_tables)


def restore(url: str, backup: str) -> None:
    """Replace the store's tables at ``url`` with the dump's, in one transaction: all of it or nothing."""
    uri, environment = libpq_target(url)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
          f"--dbname={uri}", backup], environment, "pg_restore")
