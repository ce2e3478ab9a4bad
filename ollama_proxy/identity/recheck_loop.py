"""Re-check, in the background, everyone whose keys stand on their membership at the identity provider.

Each worker runs one loop, started once it has loaded the app (``post_worker_init`` in
deploy/gunicorn.conf.py, through ``start``). Every round it asks the store for the members the
provider was not asked about for ``admin.oidc.recheck`` who left a refresh token, and re-checks
each one it can claim (``recheck.recheck_member``): the claims spread the work over every worker
of every instance sharing the store, and nobody is asked about twice at once. A round waits a
quarter of ``recheck`` after the last (a minute at most), so a person is asked about every
``recheck`` and a quarter at the latest. Those who left no refresh token are not asked about: their
keys lapse ``admin.oidc.membership_max_age`` after their last sign-in.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

from flask import Flask

from ollama_proxy.identity.provider import CLIENT
from ollama_proxy.identity.recheck import recheck_member
from ollama_proxy.store import current_store

log = logging.getLogger(__name__)

EXTENSION = "ollama_proxy.membership_rechecks"
LONGEST_PAUSE = 60.0  # seconds between two rounds, at most


def pause_between_rounds(recheck: float) -> float:
    """Seconds a worker waits between two rounds: a quarter of ``recheck``, a minute at most."""
    return min(recheck / 4, LONGEST_PAUSE)


class MembershipRechecks:
    """One worker's loop of re-checks; ``run_round`` is one round, for a caller that keeps time itself."""

    def __init__(self, app: Flask):
        self._app = app
        self._started_in: int | None = None  # the pid whose loop runs: a forked worker needs its own

    def start(self) -> None:
        """Start this process's loop, once."""
        if self._started_in == os.getpid():
            return
        self._started_in = os.getpid()
        threading.Thread(target=self._run, name="membership-rechecks", daemon=True).start()

    def _run(self) -> None:
        pause = pause_between_rounds(self._app.config["SETTINGS"].admin.oidc.recheck)
        while True:
            time.sleep(pause)
            try:
                self.run_round()
            except Exception:  # the loop outlives a bad round: stopped, it would let every key lapse
                log.exception("a round of membership re-checks failed")

    def run_round(self) -> dict[str, str]:
        """Re-check every member due for it; return each one's outcome by subject."""
        oidc = self._app.config["SETTINGS"].admin.oidc
        with self._app.app_context():
            store, client = current_store(), self._app.extensions[CLIENT]
            now = datetime.now(timezone.utc)
            due = store.members_due(before=now - timedelta(seconds=oidc.recheck), now=now)
            return {subject: recheck_member(store, client, oidc, self._app.secret_key, subject,
                                            datetime.now(timezone.utc)) for subject in due}


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = MembershipRechecks(app)


def start(app) -> None:
    """Start the worker's loop of re-checks, if ``app`` (what a worker loaded) signs in with a provider."""
    rechecks = getattr(app, "extensions", {}).get(EXTENSION)
    if rechecks is not None:
        rechecks.start()
