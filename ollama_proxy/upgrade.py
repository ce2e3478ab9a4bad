"""Make ready the code on disk to serve: its settings read, its app built, the store migrated to it.

gunicorn's master runs ``prepare`` in a forked child that imports the code afresh, at start and
before every reload (``deploy/gunicorn.conf.py``): a reload that this refuses leaves the running
workers alone. systemd's ``ExecReload=`` runs ``python -m ollama_proxy.upgrade`` first, so that
``systemctl reload`` itself fails, saying why, before gunicorn is signalled.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass


class Refused(Exception):
    """The code on disk cannot serve (the reason in one line): the running workers must go on.

    ``stage`` names what failed: "config", "store" or "app".
    """

    def __init__(self, reason: str, stage: str) -> None:
        super().__init__(reason)
        self.stage = stage


@dataclass(frozen=True)
class Prepared:
    """What the gunicorn master needs to know of the settings, read by code that cannot go stale."""

    redis_url: str | None
    admin_enabled: bool

    def as_dict(self) -> dict:
        return asdict(self)


def prepare(build_app: bool = True) -> Prepared:
    """Read the settings, migrate the store, check it matches the code, and build the app once.

    Raise ``Refused`` naming what failed. A configuration error comes first: nothing is migrated
    for code that could not start anyway.
    """
    from ollama_proxy.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise Refused(f"configuration error: {exc}", "config") from None
    migrate(settings.store)
    if build_app:
        _build(settings)
    return Prepared(settings.ratelimit.redis_url, settings.admin.enabled)


def migrate(store_settings) -> str:
    """Bring the store to this code's newest migration; return it. Refuse a store this code does not know."""
    from ollama_proxy.store import open_store
    from ollama_proxy.store.engine import open_engine
    from ollama_proxy.store.migrate import HEAD_REVISION, current_revision

    engine = open_engine(store_settings.url, store_settings.busy_timeout, store_settings.network_timeout)
    try:
        before = current_revision(engine)
        if before is not None and before not in _known_revisions():
            raise Refused(f"the store is at migration {before}, which this code does not know (its newest is "
                          f"{HEAD_REVISION}): newer code migrated it. Run that code, or restore the backup "
                          f"taken before its upgrade", "store")
        try:
            open_store(store_settings).close()
        except Exception as exc:  # alembic's, the store's and a migration's own: the reason goes to the journal
            raise Refused(f"migrating the store from {before or 'empty'} to {HEAD_REVISION} failed: "
                          f"{type(exc).__name__}: {exc}", "store") from exc
        after = current_revision(engine)
    finally:
        engine.dispose()
    if after != HEAD_REVISION:
        raise Refused(f"the store is at migration {after} after migrating, not this code's {HEAD_REVISION}", "store")
    return after


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from ollama_proxy.store.migrate import alembic_config

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _build(settings) -> None:
    """Build the app as a worker will: code that cannot (an import, a setting it lacks) fails here, not there."""
    try:
        from ollama_proxy.app import create_app

        create_app(settings)
    except Exception as exc:  # whatever the new code raises, the old workers must keep serving
        raise Refused(f"the app could not be built: {type(exc).__name__}: {exc}", "app") from exc


def main() -> int:
    """Prepare, printing the outcome: for ``ExecReload=`` and an admin checking an upgrade by hand."""
    try:
        prepared = prepare()
    except Refused as exc:
        print(f"upgrade refused, the running service is left as it is: {exc}", file=sys.stderr)
        return 1
    print(f"ready to serve: store migrated, app built (admin page {'on' if prepared.admin_enabled else 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
