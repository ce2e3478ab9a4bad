"""The VM rehearsal: INSTALL.md run as written into a scratch root, then the admin's day two.

The service runs as its own user with the unit's environment file, nginx in front over plain HTTP,
reached by a LAN name; the admin types the day-two commands of INSTALL.md as root and signs in to
the admin page through nginx. The transcript (commands and answers) is kept in
test-artifacts/vm-rehearsal.txt. See tests/e2e/vm.py for what is stood in for.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from tests.e2e.browser import ARTIFACTS, launch, new_page, screenshot
from tests.e2e.server import wait_for
from tests.e2e.vm import (
    INSTALL,
    LAN_HOST,
    SERVICE_USER,
    VM,
    edit_config,
    install_steps,
    without_comment,
    working_tree_repository,
)

PASSWORD = "a long admin password"
LAST_STEP = "9. Back up and restore"


def chat(vm: VM, key: str) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{vm.nginx.port}/api/chat", headers={"Host": LAN_HOST, "Authorization":
                         f"Bearer {key}"}, json={"model": "llama3.2", "stream": False,
                         "messages": [{"role": "user", "content": "hello from the LAN"}]}, timeout=30)


@pytest.fixture
def vm(test_services):
    scratch = Path(tempfile.mkdtemp(prefix="vm-", dir="/var/tmp"))
    machine = VM(scratch, working_tree_repository(Path(tempfile.mkdtemp(prefix="checkout-"))))
    try:
        yield machine
    finally:
        machine.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "vm-rehearsal.txt").write_text("\n\n".join(machine.transcript) + "\n")
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(machine.repository, ignore_errors=True)


def test_install_then_day_two_as_the_admin_types_it(vm, fake):
    token = secrets.token_urlsafe(32)
    vm.shell_env["TOKEN"] = token
    steps = install_steps(INSTALL.read_text())
    assert [title.split(".")[0] for title, _ in steps] == [str(n) for n in range(1, len(steps) + 1)]
    assert steps[-1][0].startswith(LAST_STEP)
    key = backed_up = None
    for title, lines in steps:
        vm.say(f"## {title}")
        for line in lines:
            command = without_comment(line)
            if command == f"systemctl enable --now {SERVICE_USER}":
                # An admin's slip before the first start: the command in the virtualenv, run as root with
                # the service's environment, must not leave root's files in the service's state directory.
                refused = vm.fails("set -a; . /etc/ollama-proxy/env; set +a; "
                                   "/opt/ollama-proxy/.venv/bin/ollama-proxy keys list")
                assert f"belongs to {SERVICE_USER}: run this command as {SERVICE_USER}" in refused.stderr
                assert list(vm.path("/var/lib/ollama-proxy").iterdir()) == []
            if command == "ollama-proxy admin-password":
                hashed = vm.run(line, stdin=PASSWORD + "\n").strip().splitlines()[-1]
                with vm.path("/etc/ollama-proxy/env").open("a") as env:
                    env.write(f"OLLAMA_PROXY_ADMIN_PASSWORD_HASH='{hashed}'\n")
                vm.say("(the admin puts that line in /etc/ollama-proxy/env, in single quotes)")
                continue
            if command.startswith("ollama-proxy usage"):  # workers write usage rows a second apart
                assert wait_for(lambda: ",alice," in vm.bash("ollama-proxy usage --key alice").stdout, 15)
            output = vm.step(line, fake.url)
            if "deploy/ollama-proxy.env /etc/ollama-proxy/env" in command:  # the configuration is in place too
                edit_config(vm, fake.url, token)
            if command.startswith("ollama-proxy keys create"):
                key = output.strip().splitlines()[-1]
                answer = chat(vm, key)  # a key made with the command works on the running service at once
                vm.say(f"(alice's key, through nginx: {answer.status_code} {answer.json()['message']['content']!r})")
                assert answer.status_code == 200, answer.text
            if command.startswith("ollama-proxy keys disable"):
                assert vm.run("ollama-proxy keys list").count(" no ") == 1
                assert wait_for(lambda secret=key: chat(vm, secret).status_code == 401, 15)  # auth.key_cache_seconds
                refused = chat(vm, key)
                vm.say(f"(alice's key now: {refused.status_code} {refused.json()})")
                assert refused.status_code == 401
            if command.startswith("ollama-proxy budgets list"):
                assert "team research  month   36000 GPU-s  hard" in output
            if command.startswith("ollama-proxy usage --by team"):
                assert re.search(r"^research +[1-9]", output, flags=re.M), output  # alice's requests, her team's
            if command.startswith("ollama-proxy usage --since"):
                rows = (vm.cwd / "usage.csv").read_text().splitlines()
                assert any(",alice," in row and ",200," in row for row in rows[1:]), rows
                assert any(",lan," in row for row in rows[1:]), rows  # step 7's requests with the file's token
            if command.startswith("ollama-proxy audit"):
                for action in ("team.create", "key.create", "key.update", "budget.set"):
                    assert action in output
                assert "root (as ollama-proxy)" in output  # who typed it, not only the service user
            if command.startswith("ollama-proxy backup"):
                backed_up = vm.run("ollama-proxy keys list")
            if command == "systemctl start ollama-proxy":  # the restored store is the backup: the same keys
                assert backed_up is not None and vm.run("ollama-proxy keys list") == backed_up
                assert wait_for(lambda secret=key: chat(vm, secret).status_code == 401, 15)  # disabled before it
            if command.startswith("tail -n 2"):
                entries = [json.loads(entry) for entry in output.splitlines()]
                assert [(entry["path"], entry["status"]) for entry in entries] == [("/health", 200), ("/api/chat", 200)]
                assert entries[1]["token"] == "lan"  # the token's name, never the token
    assert key, "step 8 made no key"
    sign_in_through_nginx(vm)


def sign_in_through_nginx(vm: VM) -> None:
    """The admin page over plain HTTP on the LAN name, through nginx: sign in, see the budget set."""
    playwright, chromium = launch(f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1")
    try:
        page = new_page(chromium)
        page.goto(f"{vm.lan_url}/admin")
        vm.say(f"(the browser at {page.url}:)\n{page.inner_text('body').strip()}")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{vm.lan_url}/admin")
        page.goto(f"{vm.lan_url}/admin/budgets")
        budgets = page.inner_text("main")
        vm.say(f"(the admin page at {vm.lan_url}/admin/budgets, signed in through nginx:)\n{budgets.strip()}")
        assert "research" in budgets and "36,000" in budgets.replace("36000", "36,000")
        assert page.script_errors == []
    finally:
        if "page" in locals():
            screenshot(page, "vm-rehearsal")
        chromium.close()
        playwright.stop()
