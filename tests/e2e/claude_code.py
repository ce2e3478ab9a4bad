"""Run Claude Code's CLI (installed by scripts/install-claude-code.sh) against a proxy, offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.server import ROOT

INSTALL_SCRIPT = ROOT / "scripts" / "install-claude-code.sh"
# The model the pinned version asks for when ANTHROPIC_MODEL is not set.
DEFAULT_MODEL = "claude-opus-5-5"
# Nothing the CLI does may leave the machine: every request but the proxy's goes to a proxy
# that is not there (the discard port), and fails at once.
NOWHERE = "http://127.0.0.1:9"


def installed_cli() -> Path:
    """Return the ``claude`` executable, or fail saying how to install it."""
    printed = subprocess.run(["bash", str(INSTALL_SCRIPT), "--dir"], capture_output=True, text=True, check=True)
    claude = Path(printed.stdout.strip()) / "node_modules" / ".bin" / "claude"
    if not claude.exists():
        raise RuntimeError(f"not installed: {claude}; run scripts/install-claude-code.sh (scripts/test.sh does)")
    return claude


def offline_environment(home: Path, proxy_url: str, credentials: dict[str, str], model: str | None) -> dict:
    """Return the CLI's whole environment: a home of its own, the proxy as Anthropic, no traffic elsewhere."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "ANTHROPIC_BASE_URL": proxy_url,
        **credentials,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HTTP_PROXY": NOWHERE,
        "HTTPS_PROXY": NOWHERE,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if model is not None:
        env["ANTHROPIC_MODEL"] = model
    return env


def run_prompt(claude: Path, prompt: str, *, cwd: Path, env: dict, allowed_tool: str,
               timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``claude -p prompt`` in ``cwd``, allowing one tool (permissions are never skipped)."""
    return subprocess.run([str(claude), "-p", prompt, "--allowedTools", allowed_tool], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
