"""The README's "A first request", pasted into a fresh shell, with the fake Ollama off port 11434."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.server import ROOT, free_port

SCRIPT_SECONDS = 180  # for the whole section, which takes under 10 on an idle machine
STOP_SECONDS = 60  # for what `kill $(jobs -p)` stopped to be gone
ACCESS_LOG = ROOT / "logs" / "access.log"  # the default configuration's, as the section reads it


def section_script() -> str:
    """Return the section's ```sh blocks, in order, as one script."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## A first request\n", 1)[1].split("\n## ", 1)[0]
    return "".join(re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M))


def on_ports(script: str, proxy_port: int, ollama_port: int) -> str:
    """Move the proxy and the (fake) Ollama where the section says they may move, and nothing else."""
    script, moved = re.subn(r"^export PROXY=127\.0\.0\.1:8080 ", f"export PROXY=127.0.0.1:{proxy_port} ",
                            script, flags=re.M)
    assert moved == 1 and "11434" in script, script
    return script.replace("11434", str(ollama_port))  # in OLLAMA_URL's line, the one place the section names it


def fresh_env() -> dict:
    """Return this environment as a new shell would have it: no proxy settings, no HTTP proxy."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA_PROXY_", "PROMETHEUS_")) and not k.lower().endswith("_proxy")}
    # The tests never leave the machine: pip may only find ollama and openai installed, never fetch them.
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def group_members(pgid: int) -> list[str]:
    """Return the command lines of the live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != "Z":
            members.append(command)
    return members


def wait_for_empty_group(pgid: int, timeout: float) -> list[str]:
    """Wait until a process group has no live process; return what is left after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return members


def json_objects(text: str) -> list[dict]:
    """Return the JSON objects of ``text``'s lines, where a line may hold several (a body with no final newline)."""
    decoder, found = json.JSONDecoder(), []
    for line in text.splitlines():
        at = 0
        while line.startswith("{", at):
            try:
                value, at = decoder.raw_decode(line, at)
            except ValueError:
                break
            found.append(value)
    return found


def run_in_one_shell(script: str, workdir: Path) -> tuple[str, str]:
    """Run ``script`` in one bash from the project root; return its stdout and stderr once all it started is gone."""
    # Apart: out of a terminal, curl writes its progress meter to stderr, and the servers write their logs there.
    with open(workdir / "stdout", "wb") as stdout, open(workdir / "stderr", "wb") as stderr:
        # A session of its own: the shell and all it starts are one process group, killed at the end whatever happens.
        shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=fresh_env(), stdin=subprocess.DEVNULL,
                                 stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        shell.wait(SCRIPT_SECONDS)
        left = wait_for_empty_group(shell.pid, STOP_SECONDS)
    except subprocess.TimeoutExpired:
        left = None
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # all gone, as it should be
        shell.wait()
    output, errors = (workdir / "stdout").read_text(), (workdir / "stderr").read_text()
    assert left is not None, f"the section did not finish within {SCRIPT_SECONDS}s:\n{output}\n{errors}"
    assert left == [], f"kill $(jobs -p) left these running: {left}\n{output}\n{errors}"
    return output, errors


@pytest.mark.timeout(SCRIPT_SECONDS + STOP_SECONDS + 60)  # past the test's own limits, which say more
def test_a_first_request_works_as_written_with_the_fake_ollama_on_another_port(tmp_path):
    proxy_port = free_port()
    ollama_port = next(port for port in iter(free_port, None) if port not in (proxy_port, 11434))
    log_start = ACCESS_LOG.stat().st_size if ACCESS_LOG.exists() else 0
    output, errors = run_in_one_shell(on_ports(section_script(), proxy_port, ollama_port), tmp_path)
    assert "Traceback" not in errors, errors

    lines = json_objects(output)
    assert {"status": "ok"} in lines, output  # /health, Ollama reached
    assert any("token" in str(line.get("error")) for line in lines), output  # 401, no token sent
    assert "llama3.2:latest" in [model["name"] for line in lines for model in line.get("models", [])], output
    chat = "".join(line["message"]["content"] for line in lines if "message" in line)
    assert chat == "You said: Why is the sky blue?", output
    assert {"status": "success"} in lines, output  # the pull, with the manage token
    assert re.findall(r"^You said: hi$", output, re.M) == ["You said: hi"] * 2, output  # ollama's client, openai's

    tail = [line for line in lines if "request_id" in line]
    assert len(tail) == 3 and {line["token"] for line in tail} & {"generate#0", "manage#0"}, output
    # Every line of this run, read once the proxy has stopped: the last ones may be written after curl is done.
    written = ACCESS_LOG.read_bytes()[log_start:].decode()
    assert {("/api/chat", "generate#0"), ("/api/pull", "manage#0")} <= \
        {(line["path"], line["token"]) for line in json_objects(written)}, written
    tokens = re.findall(r"^(?:generate|manage) token: +(\S+)$", output, re.M)
    assert len(tokens) == 2 and not any(token in written for token in tokens), written
