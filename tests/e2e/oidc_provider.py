"""The OpenID provider the single sign-on tests sign in with: tests/js/oidc_provider.mjs (node-oidc-provider).

It runs under the Node.js scripts/install-js-clients.sh installs, on a free port of ``localhost``
(another host than the proxy's ``127.0.0.1``, so each keeps its cookies, as two sites do), and
is ready once its discovery document names it. A test changes a person's groups, or disables
them, or renames them, as the provider's administrator would (``put_in_groups``, ``disable``, ``rename``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from tests.e2e.js_clients import JS_DIR, install
from tests.e2e.server import die_with_parent, free_port, stop_process

CLIENT_ID = "ollama-proxy"
CLIENT_SECRET = "test-client-secret-0123456789"
SCRIPT = "oidc_provider.mjs"


class OidcProvider:
    """One node-oidc-provider that knows one client, whose callback is ``redirect_uri``."""

    def __init__(self, redirect_uri: str, log: Path):
        self.redirect_uri = redirect_uri
        self.port = free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> OidcProvider:
        node = install()
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([node, SCRIPT, str(self.port), self.redirect_uri, CLIENT_ID, CLIENT_SECRET],
                                            cwd=JS_DIR, stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while not self._discovered():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OpenID provider did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.1)
        return self

    def _discovered(self) -> bool:
        try:
            answer = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=2)
        except requests.RequestException:
            return False
        return answer.status_code == 200 and answer.json().get("issuer") == self.issuer

    def put_in_groups(self, login: str, *groups: str) -> None:
        """Make ``groups`` all the groups of ``login`` (an account that did not exist is made), enabled."""
        self._change(login, {"groups": list(groups)})

    def disable(self, login: str) -> None:
        """Disable ``login``: the provider refuses their refresh tokens from now on."""
        self._change(login, {"disabled": True})

    def rename(self, login: str, name: str) -> None:
        """Name ``login`` so in the claims that name a person (``preferred_username``, ``name``)."""
        self._change(login, {"name": name})

    def _change(self, login: str, change: dict) -> None:
        answer = requests.put(f"{self.issuer}/test/accounts/{login}", json=change, timeout=5)
        assert answer.status_code == 204, answer.text

    def stop(self) -> None:
        stop_process(self.process, 10)
