"""The installed ``ollama-proxy`` command, run against a test proxy's configuration as its operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.server import ROOT, ProxyServer

COMMAND = str(Path(sys.executable).with_name("ollama-proxy"))  # what `pip install` put on PATH


def cli(server: ProxyServer, *args: str) -> subprocess.CompletedProcess:
    """Run ``ollama-proxy ARGS --config <the server's>``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, wherever the installed package points
    return subprocess.run([COMMAND, *args, "--config", str(server.config_path)], capture_output=True, text=True,
                          env=env, cwd=server.workdir, timeout=60)


def create_key(server: ProxyServer, *args: str) -> str:
    """Create a managed key with ``ollama-proxy keys create``; return its secret."""
    done = cli(server, "keys", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]
