"""JavaScript clients (tests/js/) run by Node.js against a test proxy: one scenario per run, its result read as JSON.

scripts/install-js-clients.sh installs them from tests/js/package-lock.json; ``install`` runs it
(a no-op once installed) and returns the Node.js to run them with.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.e2e.server import ROOT, ProxyServer

JS_DIR = ROOT / "tests" / "js"
INSTALL = ROOT / "scripts" / "install-js-clients.sh"
OLDEST_NODE = 22  # the AI SDK's engines field


@functools.cache
def install() -> str:
    """Install the clients if they are not yet; return the path of the Node.js that runs them."""
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{INSTALL} failed:\n{done.stdout}{done.stderr}"
    assert (JS_DIR / "node_modules" / "ai").is_dir(), (
        f"the JavaScript clients are not installed: run {INSTALL} (it needs npm)\n{done.stderr}")
    node = subprocess.run(["bash", str(INSTALL), "--node"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    assert major >= OLDEST_NODE, f"{node} is {version}: the AI SDK needs Node.js {OLDEST_NODE} or later"
    return node


@dataclass(frozen=True)
class Clients:
    """One Node.js, one proxy, one token: ``run`` a scenario of a script in tests/js/."""

    node: str
    proxy: ProxyServer
    token: str

    def run(self, script: str, scenario: str, *args: str, timeout: float = 60) -> Any:
        """Run ``node tests/js/<script> <scenario> <args>`` and return the JSON it printed."""
        env = {**os.environ, "PROXY_URL": self.proxy.url, "PROXY_TOKEN": self.token}
        done = subprocess.run([self.node, script, scenario, *args], cwd=JS_DIR, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"{script} {scenario} {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        return json.loads(done.stdout.splitlines()[-1])

    def with_token(self, token: str) -> Clients:
        return Clients(self.node, self.proxy, token)
