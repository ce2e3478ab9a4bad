"""Open the store for a command without leaving files in it that the service could not open."""

from __future__ import annotations

import os
import pwd
import sys

from sqlalchemy.engine import make_url

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import Store, StoreError, open_store

# The VM install of INSTALL.md: the service's environment file (its store's address), and the command that runs
# with it and as the service's user (deploy/ollama-proxy-command), which says so in SERVICE_ENV.
SERVICE_ENV_FILE = "/etc/ollama-proxy/env"
SERVICE_COMMAND = "/usr/local/bin/ollama-proxy"
SERVICE_ENV = "OLLAMA_PROXY_SERVICE_ENV"
_STORE_URL = "OLLAMA_PROXY_STORE_URL"


def sqlite_file(url: str) -> str | None:
    """Return the absolute path of the SQLite file ``url`` names, or None for another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)


def nearest_existing(path: str) -> str:
    """Return ``path`` or the closest of its parents that exists."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def foreign_owner(path: str, euid: int) -> str | None:
    """Name the user a root command would leave unreadable files to at ``path``, or None when there is none.

    SQLite makes its lock, journal and WAL files beside the database as whoever opens it: made by root,
    the service's own user could no longer open its store, and the service would fail to start.
    """
    if euid != 0:
        return None  # files made by anyone else are theirs; the directory's rights decide
    owner = os.stat(nearest_existing(path)).st_uid
    if owner == 0:
        return None
    try:
        return pwd.getpwuid(owner).pw_name
    except KeyError:
        return f"uid {owner}"


def shown_store(url: str) -> str:
    """Name a store for the operator: a SQLite file's path, another database's address without its password."""
    path = sqlite_file(url)
    return path if path is not None else make_url(url).render_as_string(hide_password=True)


def service_store_url(env_file: str) -> str | None:
    """Return the store's address the service's environment file sets, or None if it sets none or cannot be read
    (only root may read it)."""
    try:
        with open(env_file, encoding="utf-8") as lines:
            for line in lines:
                name, _, value = line.strip().partition("=")
                if name == _STORE_URL:
                    return value.strip().strip("'\"")
    except OSError:
        return None
    return None


def service_store_note(url: str, environ=os.environ, env_file: str = SERVICE_ENV_FILE) -> str | None:
    """Say which store this command works on when a service installed here may read another; None when none is
    installed, or when the command runs with its environment (its own command) or on its store."""
    if environ.get(SERVICE_ENV) or not os.path.exists(env_file):
        return None
    service = service_store_url(env_file)
    if service is not None and shown_store(service) == shown_store(url):
        return None
    theirs = f"the service's ({shown_store(service)})" if service else f"the one {env_file} gives the service"
    return (f"ollama-proxy: this command works on the store {shown_store(url)}, not on {theirs}: what it changes "
            f"the running service does not see. For the service's store, run it as root through {SERVICE_COMMAND} "
            f"(sudo ollama-proxy ...), which reads {env_file} as the service does.")


def open_for_command(settings: StoreSettings) -> Store:
    """Open the configured store; refuse what would break the service's access to it; say, every time, when it is
    not the store of a service installed here."""
    note = service_store_note(settings.url, os.environ, SERVICE_ENV_FILE)
    if note:
        print(note, file=sys.stderr)
    path = sqlite_file(settings.url)
    if path is None:
        return open_store(settings)
    owner = foreign_owner(path, os.geteuid())
    if owner:
        raise StoreError(
            f"the store {path} belongs to {owner}: run this command as {owner} (sudo -u {owner} ..., or the "
            f"ollama-proxy command of INSTALL.md), since files root makes there are ones {owner} cannot open")
    new = not os.path.exists(path)
    try:
        store = open_store(settings)
    except PermissionError as exc:
        raise StoreError(f"cannot open or make the store {path}: {exc.strerror}") from None
    if new:
        # Said so that a store in the wrong place (a configuration without the service's environment) shows.
        print(f"ollama-proxy: made a new, empty store at {path}", file=sys.stderr)
    return store
