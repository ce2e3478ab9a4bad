"""Run OpenAI's Codex CLI, as scripts/install-codex.sh installs it, with the proxy as its model provider."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.server import ROOT

INSTALL_SCRIPT = ROOT / "scripts" / "install-codex.sh"
ARTIFACTS = ROOT / "test-artifacts"  # kept after the run, as the browser tests keep their screenshots
TOKEN_ENV = "OLLAMA_PROXY_TOKEN"
# Whatever Codex would reach beyond the proxy (updates, telemetry, the web) meets a closed port.
NOWHERE = "http://127.0.0.1:9"


def install() -> Path:
    """Install the pinned Codex CLI if it is not yet (a no-op when it is) and return its command."""
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/install-codex.sh failed:\n{done.stderr}")
    printed = subprocess.run(["bash", str(INSTALL_SCRIPT), "--dir"], capture_output=True, text=True, check=True)
    return Path(printed.stdout.strip()) / "node_modules" / ".bin" / "codex"


def config_toml(base_url: str, model: str) -> str:
    """Return a config.toml whose default model comes from the proxy, over the Responses API."""
    return f'''model = "{model}"
model_provider = "ollama-proxy"
check_for_update_on_startup = false

[model_providers.ollama-proxy]
name = "Ollama Proxy"
base_url = "{base_url}/v1"
env_key = "{TOKEN_ENV}"
wire_api = "responses"

[analytics]
enabled = false
'''


class Codex:
    """The Codex CLI with a CODEX_HOME of its own, pointed at one proxy."""

    def __init__(self, command: Path, home: Path, base_url: str, model: str, token: str):
        self.command, self.home, self.token = command, home, token
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config_toml(base_url, model))

    def exec(self, prompt: str, workdir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``codex exec PROMPT`` in ``workdir``, sandboxed read-only, and wait for it (at most ``timeout`` s)."""
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("OPENAI_", "CODEX_")) and name.lower() not in ("http_proxy", "https_proxy")}
        env.update({"CODEX_HOME": str(self.home), TOKEN_ENV: self.token, "HOME": str(self.home),
                    "HTTP_PROXY": NOWHERE, "HTTPS_PROXY": NOWHERE, "NO_PROXY": "127.0.0.1,localhost"})
        argv = [str(self.command), "exec", "--skip-git-repo-check", "--ephemeral", "--sandbox", "read-only",
                "--color", "never", "--cd", str(workdir), prompt]
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout,
                              stdin=subprocess.DEVNULL)
