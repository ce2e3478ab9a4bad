"""Last of the suite: no secret in any log that any test server wrote.

Every proxy, nginx and fake the tests started wrote its logs under pytest's
base temporary directory; after every other test has run (the conftest puts
this module last), each of those files is read and searched for every token
the tests used. A secret there is a leak whatever test caused it.

``scripts/test.sh`` runs the suite in two sessions, two test files at a time and
then the tests marked ``alone`` (this one among them, so that it runs after both):
it names the directory holding both sessions' base directories in
``OLLAMA_PROXY_TEST_LOGS``, and every log under it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import SECRETS, auth

# Last of all: after the tests two at a time, whose workers' logs it reads too.
pytestmark = pytest.mark.alone

LOG_SUFFIXES = (".log", ".stderr", ".err", ".out")


def log_files(base) -> list:
    """Return every log file under ``base``: whatever is in a ``logs`` directory, and ``*.log`` / ``*.stderr``."""
    return sorted(p for p in base.rglob("*") if p.is_file() and
                  ("logs" in p.relative_to(base).parts[:-1] or p.name.endswith(LOG_SUFFIXES)))


def test_no_secret_in_any_log_the_test_servers_wrote(proxy, fake, tmp_path_factory):
    for secret in SECRETS:  # at least these, whatever else ran before
        requests.get(proxy.url + "/api/tags", headers=auth(secret), timeout=10)
        requests.get(proxy.url + "/metrics", headers={"x-api-key": secret}, timeout=10)
    base = Path(os.environ.get("OLLAMA_PROXY_TEST_LOGS") or tmp_path_factory.getbasetemp())
    files = log_files(base)
    assert proxy.log_dir / "access.log" in files and proxy.stderr_path in files
    for path in files:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {path.relative_to(base)}: " + next(
                line for line in text.splitlines() if secret in line)[:500]
