"""A year in one test: an earlier release installed on the VM, used, upgraded under load, restored, rolled back.

The earlier release is a commit of this repository found by a rule, not a tag (a tag made here would not
reach CI's clone): the last commit whose package said 0.1.0. Its store is some migrations behind the
checkout under test, so the upgrade migrates it, backing it up first, and that backup is the way back. It is
installed by its own INSTALL.md's VM steps, read from that commit (an older release lacks steps the
checkout's INSTALL.md has, backups among them), and its data is made with lines of its own docs. The
upgrade, the backup, the key rotation, the restore into a second store and the way back are the lines of
the checkout's INSTALL.md and docs/. Every shell line is read from those files; where an admin changes a
name or a path (bob for alice, the backup's file name), the test changes it the same way. How the VM is
stood in for: tests/e2e/vm.py. The transcript is kept in test-artifacts/vm-year.txt.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.e2e.server import ROOT, wait_for
from tests.e2e.vm import (
    INSTALL,
    LAN_HOST,
    VM,
    doc_line,
    edit_config,
    install_steps,
    publish_working_tree,
    release_repository,
    section_lines,
    without_comment,
)

ARTIFACTS = ROOT / "test-artifacts"  # kept after the run, beside test_vm_rehearsal's transcript
MIGRATIONS = ROOT / "ollama_proxy" / "store" / "migrations" / "versions"
PEOPLE = {"bob": "research", "carol": "platform", "dave": "platform"}  # each chats with a key of their own
PEOPLE_MODEL, AGENT_MODEL = "llama3.2", "qwen3:8b"
AGENT_REPLY = " ".join(f"step{i}" for i in range(30))
AGENT_CHUNK_DELAY = 0.3  # a stream of 9 s: the agent always has one open, the reload's included
PASSWORD = "a long admin password"


def earlier_release() -> str:
    """Return the last commit whose package said 0.1.0: the release every install ran until 0.2.0 was numbered.

    Found by its version string, so the rule gives the same commit for good (CHANGELOG.md, 0.2.0).
    """
    changed = git("log", "--format=%H", "-S", '__version__ = "0.1.0"', "--", "ollama_proxy/__init__.py").split()
    assert changed, "no commit said 0.1.0: the rule needs this repository's history (not a shallow clone)"
    return git("rev-parse", f"{changed[0]}^").strip()


def git(*command: str) -> str:
    return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def old_vm(test_services):
    scratch = Path(tempfile.mkdtemp(prefix="vm-", dir="/var/tmp"))
    release = earlier_release()
    machine = VM(scratch, release_repository(Path(tempfile.mkdtemp(prefix="release-")), release))
    machine.say(f"(the earlier release: commit {release}, the last that said 0.1.0)")
    try:
        yield machine
    finally:
        machine.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "vm-year.txt").write_text("\n\n".join(machine.transcript) + "\n")
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(machine.repository, ignore_errors=True)


@pytest.mark.timeout(900)
def test_a_year_in_one_test(old_vm, fake):
    vm, started = old_vm, time.monotonic()
    fake.script(PEOPLE_MODEL, reply="ok")
    fake.script(AGENT_MODEL, reply=AGENT_REPLY, chunk_delay=AGENT_CHUNK_DELAY)
    install(vm, (vm.repository / "INSTALL.md").read_text(), fake.url)
    keys = make_data(vm)
    assert wait_for(lambda: usage_rows(vm, "bob"), 15), "bob's chat is not in the usage export"
    before_upgrade = {"bob": usage_rows(vm, "bob"), "keys": key_names(vm)}
    load = Load(vm, keys)
    load.start()
    try:
        backup = upgrade(vm, fake.url, load)
        keys["bob-new"] = rotate(vm, keys["bob"])
    finally:
        load.finish()
    vm.say(f"(under load: {load.answered} chats answered, {len(load.streams)} agent streams ended, "
           f"failures: {load.failures})")
    assert load.failures == []
    # How many streams end depends on how long the upgrade takes; one spanning the reload is what counts.
    assert load.streams and all(stream["whole"] for stream in load.streams)
    assert any(s["opened"] < load.reload_at < s["ended"] for s in load.streams), "no stream spanned the reload"
    restore_into_a_second_store(vm, backup)
    roll_back(vm, fake.url, keys, before_upgrade)
    vm.say(f"(the whole rehearsal took {time.monotonic() - started:.0f} s)")


def install(vm: VM, text: str, upstream_url: str) -> None:
    """Carry out the VM steps of a release's INSTALL.md, as the admin types them."""
    token = secrets.token_urlsafe(32)
    vm.shell_env["TOKEN"] = token
    for title, lines in install_steps(text):
        vm.say(f"## {title} (the earlier release's INSTALL.md)")
        for line in lines:
            command = without_comment(line)
            if command == "ollama-proxy admin-password":
                hashed = vm.run(line, stdin=PASSWORD + "\n").strip().splitlines()[-1]
                with vm.path("/etc/ollama-proxy/env").open("a") as env:
                    env.write(f"OLLAMA_PROXY_ADMIN_PASSWORD_HASH='{hashed}'\n")
                continue
            vm.step(line, upstream_url)
            if "deploy/ollama-proxy.env /etc/ollama-proxy/env" in command:
                edit_config(vm, upstream_url, token)


def make_data(vm: VM) -> dict[str, str]:
    """Teams, keys and a key's budget, with the lines of the installed release's docs; return each key's secret."""
    installed = vm.path("/opt/ollama-proxy")
    guide, budgets = (installed / "INSTALL.md").read_text(), (installed / "docs/budgets.md").read_text()
    vm.say("## A year's data (lines of the earlier release's INSTALL.md and docs/budgets.md)")
    vm.run(doc_line(guide, "ollama-proxy teams create research").replace("research", "platform"))
    create = doc_line(guide, "ollama-proxy keys create")
    keys = {}
    for name, team in {**PEOPLE, "agent": "platform"}.items():
        line = create.replace("alice", name).replace("research", team)
        if name == "agent":
            line = line.replace("'llama3*'", "'qwen3*'")
        keys[name] = vm.run(line).strip().splitlines()[-1]
    vm.run(doc_line(budgets, "ollama-proxy budgets set --key").replace("alice", "bob"))
    for name in PEOPLE:  # some history before the load
        assert chat(vm, keys[name]).status_code == 200
    return keys


def upgrade(vm: VM, upstream_url: str, load: Load) -> Path:
    """Publish the checkout and run INSTALL.md's "Upgrading" lines; return the backup the admin took."""
    publish_working_tree(vm.repository)
    backup = None
    vm.say("## Upgrading (the checkout's INSTALL.md, from here on), under load")
    for line in section_lines(INSTALL.read_text(), "Upgrading"):
        command = without_comment(line)
        if command == "systemctl reload ollama-proxy":
            old_workers = workers(vm)
            load.reload_at = time.time()
            vm.step(line, upstream_url)
            assert wait_for(lambda old=old_workers: not workers(vm) & old, 60), "the old workers did not finish"
            continue
        output = vm.step(line, upstream_url)
        if command.startswith("ollama-proxy backup"):
            backup = Path(re.search(r" to (\S+): ", output)[1])
    assert backup is not None, "INSTALL.md's upgrade takes no backup"
    assert wait_for(lambda: health(vm)["store_revision"] == max(MIGRATIONS.glob("[0-9]*_*.py")).name[:4], 30)
    return backup


def rotate(vm: VM, old_secret: str) -> str:
    """Make a key after the backup, then rotate bob's as docs/keys.md says: same budget, same history."""
    vm.run(doc_line(INSTALL.read_text(), "ollama-proxy keys create").replace("alice", "late"))
    history, budget = usage_rows(vm, "bob"), budget_row(vm, "bob")
    line = doc_line((ROOT / "docs/keys.md").read_text(), "ollama-proxy keys rotate")
    new_secret = vm.run(line.replace("alice", "bob")).strip().splitlines()[-1]
    assert new_secret != old_secret
    assert chat(vm, new_secret).status_code == 200
    assert chat(vm, old_secret).status_code == 200  # the grace the line gives
    assert wait_for(lambda: usage_rows(vm, "bob") > history, 15)  # its history, and the new requests added
    after = budget_row(vm, "bob")
    vm.say(f"(bob's budget before the rotation: {budget}\n after: {after})")
    assert after[:4] == budget[:4] and float(after[4].split()[0]) >= float(budget[4].split()[0]) > 0
    return new_secret


def restore_into_a_second_store(vm: VM, backup: Path) -> None:
    """Restore the admin's backup into a store of its own, as docs/backup.md says; compare it row for row."""
    vm.say("## The backup restored into a second store (docs/backup.md)")
    line = doc_line((ROOT / "docs/backup.md").read_text(), "OLLAMA_PROXY_STORE_URL=")
    vm_backup = str(backup).replace(str(vm.root), "")
    vm.run(re.sub(r"/var/lib/ollama-proxy/backup-\S+\.db", vm_backup, line))
    restored = vm.path(re.search(r"sqlite:///(\S+)", line)[1])
    assert table_rows(restored) == table_rows(backup)
    service = table_rows(vm.path("/var/lib/ollama-proxy/ollama-proxy.db"))
    names = {row[1] for row in table_rows(restored)["api_keys"]}
    vm.say(f"(the restored store equals the backup, row for row, in {len(table_rows(backup))} tables; its keys: "
           f"{sorted(names)})")
    assert "late" not in names and "late" in {row[1] for row in service["api_keys"]}


def roll_back(vm: VM, upstream_url: str, keys: dict[str, str], before: dict) -> None:
    """Go back as docs/backup.md says: the upgrade's own backup and the earlier release's code."""
    made = sorted(vm.path("/var/lib/ollama-proxy").glob("ollama-proxy.db.upgrade-from-*"))
    # An old worker that first opened the store after the migration backed it up again, from the new head
    # (the earlier release migrated on a worker's first use): the upgraded store, which docs/backup.md says.
    head = max(MIGRATIONS.glob("[0-9]*_*.py")).name[:4]
    made = [path for path in made if path.name.split("upgrade-from-")[1][:4] != head]
    assert len(made) == 1, made
    vm.placeholders["<the release you ran>"] = subprocess.run(
        ["git", "rev-parse", "HEAD~1"], cwd=vm.repository, capture_output=True, text=True, check=True).stdout.strip()
    vm.say("## Going back to the earlier release (docs/backup.md)")
    for line in section_lines((ROOT / "docs/backup.md").read_text(), "Going back to an older release"):
        vm.step(re.sub(r"/var/lib/ollama-proxy/ollama-proxy\.db\.upgrade-from-\S+",
                       f"/var/lib/ollama-proxy/{made[0].name}", line), upstream_url)
    assert key_names(vm) == before["keys"], "the keys are not those the earlier release had"
    assert usage_rows(vm, "bob") >= before["bob"]
    assert chat(vm, keys["bob"]).status_code == 200  # the secret before the rotation, which came after the backup
    assert chat(vm, keys["bob-new"]).status_code == 401
    with closing(sqlite3.connect(vm.path("/var/lib/ollama-proxy/ollama-proxy.db"))) as db:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    vm.say(f"(the earlier release serves again, its store at migration {revision})")
    assert revision == made[0].name.split("upgrade-from-")[1][:4]


def chat(vm: VM, key: str) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{vm.nginx.port}/api/chat", headers={"Host": LAN_HOST, "Authorization":
                         f"Bearer {key}"}, json={"model": PEOPLE_MODEL, "stream": False,
                         "messages": [{"role": "user", "content": "hello"}]}, timeout=30)


def health(vm: VM) -> dict:
    answer = requests.get(f"http://127.0.0.1:{vm.nginx.port}/health", timeout=10,
                          headers={"Host": LAN_HOST, "Authorization": f"Bearer {vm.shell_env['TOKEN']}"})
    return answer.json()


def workers(vm: VM) -> set[int]:
    """The gunicorn master's live children."""
    pid = vm.service.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children if _state(child) not in ("Z", None)}


def _state(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def usage_rows(vm: VM, key: str) -> frozenset[str]:
    """The key's requests in INSTALL.md's usage export (one CSV line each)."""
    vm.run(doc_line(INSTALL.read_text(), "ollama-proxy usage --since"))
    rows = list(csv.DictReader(io.StringIO((vm.cwd / "usage.csv").read_text())))
    return frozenset(json.dumps(row, sort_keys=True) for row in rows if row["key_name"] == key)


def budget_row(vm: VM, key: str) -> list[str]:
    listed = vm.run(doc_line(INSTALL.read_text(), "ollama-proxy budgets list"))
    rows = [re.split(r"\s{2,}", line.strip()) for line in listed.splitlines() if line.startswith(f"key {key} ")]
    assert len(rows) == 1, listed
    return rows[0]


def key_names(vm: VM) -> list[str]:
    listed = vm.run(doc_line(INSTALL.read_text(), "ollama-proxy keys list"))
    return sorted(line.split()[0] for line in listed.splitlines()[1:] if line.strip())


def table_rows(database: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in a fixed order."""
    # Closed at once: a connection left open in WAL mode would keep a restore from switching the store out of it.
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


class Load:
    """People chatting and an agent streaming through nginx, every outcome kept: nothing may fail or be cut."""

    def __init__(self, vm: VM, keys: dict[str, str]):
        self.vm, self.keys = vm, keys
        self.failures: list[str] = []
        self.streams: list[dict] = []
        self.answered = 0
        self.reload_at = float("inf")
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._chat, args=(name,), daemon=True) for name in PEOPLE]
        self._threads.append(threading.Thread(target=self._agent, daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        assert wait_for(lambda: self.answered >= 6, 30), self.failures

    def finish(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _chat(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                answer = chat(self.vm, self.keys[name])
                if answer.status_code != 200 or answer.json()["message"]["content"] != "ok":
                    self.failures.append(f"{name}: {answer.status_code} {answer.text[:200]}")
                self.answered += 1
            except Exception as exc:  # every failure is counted, whatever its kind
                self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            self._stop.wait(0.3)

    def _agent(self) -> None:
        """An agent's OpenAI-style streams, one after the other."""
        while not self._stop.is_set():
            opened, parts, done = time.time(), [], False
            try:
                with requests.post(f"http://127.0.0.1:{self.vm.nginx.port}/v1/chat/completions", stream=True,
                                   headers={"Host": LAN_HOST, "Authorization": f"Bearer {self.keys['agent']}"},
                                   json={"model": AGENT_MODEL, "stream": True, "messages": [
                                       {"role": "user", "content": "go on"}]}, timeout=60) as answer:
                    answer.raise_for_status()
                    for line in answer.iter_lines():
                        if line == b"data: [DONE]":
                            done = True
                        elif line.startswith(b"data: "):
                            parts.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
            except Exception as exc:
                self.failures.append(f"agent: {type(exc).__name__}: {exc}")
            whole = done and "".join(parts) == AGENT_REPLY
            self.streams.append({"opened": opened, "ended": time.time(), "whole": whole})
            if not whole:
                self.failures.append(f"agent: a stream cut after {len(parts)} parts")
