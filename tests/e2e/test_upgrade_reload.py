"""An upgrade as INSTALL.md does it, under load: new code and a new migration on disk, then the unit's reload.

The proxy's code is copied to a directory of its own, standing for /opt/ollama-proxy: gunicorn runs from
it as the unit runs it, with 2 gevent workers in front of the fake Ollama. The copy is then changed as
`git pull` changes a checkout (the package, its settings module, the worker class, the app, a migration),
and reloaded by running the unit's own ``ExecReload=`` lines, as systemd does, while 50 streams are open
and 10 requests a second come.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.actors import TESTER
from tests.e2e.conftest import auth, base_config
from tests.e2e.server import DEPLOY, ROOT, ProxyServer, start_server, wait_for

STREAMS = 50
REQUESTS_PER_SECOND = 10
STREAM_CHUNKS, CHUNK_DELAY = 24, 0.5  # a stream of 12 s: open before the reload, running past it
STREAM_REPLY = " ".join(f"w{i}" for i in range(STREAM_CHUNKS))
STREAM_MODEL, QUICK_MODEL = "llama3.2", "qwen3:8b"
MARK_HEADER = "X-Upgrade-Mark"

# What `git pull` brings, beside the migration: marks that only the new code has, in modules the gunicorn
# master once held (the package, its settings, the worker class) and in the app.
NEW_CODE = {
    "ollama_proxy/__init__.py": '\nUPGRADE_MARK = "new"\n',
    "ollama_proxy/config/__init__.py": '\nUPGRADE_MARK = "new"\n',
    "ollama_proxy/worker.py": '''

class _MarkedWorker(GeventWorker):
    def init_process(self):
        import os

        os.environ["UPGRADE_MARK_WORKER"] = "new"
        super().init_process()


GeventWorker = _MarkedWorker  # noqa: F811
''',
    "wsgi.py": '''

import os  # noqa: E402

import ollama_proxy  # noqa: E402
from ollama_proxy import config  # noqa: E402


@app.after_request
def _mark(response):
    response.headers["X-Upgrade-Mark"] = "new"
    return response


app.add_url_rule("/upgrade-mark", "upgrade_mark", lambda: {
    "package": getattr(ollama_proxy, "UPGRADE_MARK", None), "config": getattr(config, "UPGRADE_MARK", None),
    "worker": os.environ.get("UPGRADE_MARK_WORKER")})
''',
}
MIGRATION = '''"""The upgrade rehearsal's migration: a table, a column the old workers' inserts leave empty."""

import time

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    op.drop_table("upgrade_rehearsal")
'''
GOOD_MIGRATION = '''    op.create_table("upgrade_rehearsal", sa.Column("migrated_at", sa.Float, nullable=False))
    op.execute(f"INSERT INTO upgrade_rehearsal (migrated_at) VALUES ({time.time()})")
    op.add_column("usage", sa.Column("upgrade_rehearsal", sa.Integer, nullable=True))'''
FAILING_MIGRATION = '''    raise RuntimeError("rehearsed failure: this migration cannot run")'''


def release(tmp_path: Path) -> Path:
    """A copy of this checkout's code: what /opt/ollama-proxy holds before the upgrade."""
    copy = tmp_path / "opt-ollama-proxy"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ollama_proxy", "deploy", "config"):
        shutil.copytree(ROOT / name, copy / name, ignore=skip)
    shutil.copy(ROOT / "wsgi.py", copy / "wsgi.py")
    return copy


def pull(copy: Path, migration_body: str) -> str:
    """Change the copy as pulling a newer release would: new code, one migration more. Return its revision."""
    migrate = copy / "ollama_proxy" / "store" / "migrate.py"
    head = re.search(r'^HEAD_REVISION = "(\d+)"$', migrate.read_text(), flags=re.MULTILINE)
    assert head, "HEAD_REVISION is no longer a line of its own in store/migrate.py"
    new = f"{int(head[1]) + 1:04d}"
    migrate.write_text(migrate.read_text().replace(head[0], f'HEAD_REVISION = "{new}"'))
    (copy / "ollama_proxy" / "store" / "migrations" / "versions" / f"{new}_upgrade_rehearsal.py").write_text(
        MIGRATION.format(revision=new, down=head[1], body=migration_body))
    for path, addition in NEW_CODE.items():
        with open(copy / path, "a") as module:
            module.write(addition)
    return new


def exec_reload(server: ProxyServer) -> list[subprocess.CompletedProcess]:
    """Run the unit's ExecReload= lines in order, as systemd does: the first that fails ends the reload."""
    unit = (DEPLOY / "ollama-proxy.service").read_text()
    lines = re.findall(r"^ExecReload=(.+)$", unit, flags=re.MULTILINE)
    assert lines and lines[-1] == "/bin/kill -HUP $MAINPID", lines
    venv_bin = str(Path(sys.executable).parent) + "/"
    # What the unit's WorkingDirectory and the virtualenv's in-place install give the commands: the copy's code.
    env = {**os.environ, "OLLAMA_PROXY_CONFIG": str(server.config_path), "PYTHONPATH": str(server.root)}
    done = []
    for line in lines:
        argv = [word.replace("/opt/ollama-proxy/.venv/bin/", venv_bin).replace("$MAINPID", str(server.process.pid))
                for word in shlex.split(line)]
        done.append(subprocess.run(argv, cwd=server.root, env=env, capture_output=True, text=True, timeout=60))
        if done[-1].returncode != 0:
            break
    return done


def store_revision(server: ProxyServer) -> str:
    with sqlite3.connect(server.workdir / "store.db") as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


class Load:
    """Streams held open and a steady rate of short requests, each outcome kept: nothing may fail."""

    def __init__(self, url: str):
        self.url = url
        self.errors: list[str] = []
        self.streams: list[str] = []  # the content of each stream that ended
        self.answers: list[tuple[float, str | None]] = []  # when each short request was answered, by which code
        self.opened = threading.Semaphore(0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn(self._requests)
        for _ in range(STREAMS):
            self._spawn(self._stream)
        for _ in range(STREAMS):
            assert self.opened.acquire(timeout=30), f"not every stream opened: {self.errors[:3]}"

    def finish(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _spawn(self, target) -> None:
        self._threads.append(threading.Thread(target=target, daemon=True))
        self._threads[-1].start()

    def _stream(self) -> None:
        try:
            body = {"model": STREAM_MODEL, "messages": [{"role": "user", "content": "x"}]}
            with requests.post(self.url + "/api/chat", json=body, headers=auth(), stream=True, timeout=60) as answer:
                answer.raise_for_status()
                lines = answer.iter_lines()
                parts = [next(lines)]
                self.opened.release()
                parts += [line for line in lines if line]
            self.streams.append(b"\n".join(parts).decode())
        except Exception as exc:  # every failure is counted, whatever its kind
            self.errors.append(f"stream: {type(exc).__name__}: {exc}")
            self.opened.release()

    def _requests(self) -> None:
        body = {"model": QUICK_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": False}
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                answer = requests.post(self.url + "/api/chat", json=body, headers=auth(), timeout=30)
                if answer.status_code != 200 or answer.json()["message"]["content"] != "ok":
                    self.errors.append(f"request: {answer.status_code} {answer.text[:200]}")
                self.answers.append((time.time(), answer.headers.get(MARK_HEADER)))
            except Exception as exc:
                self.errors.append(f"request: {type(exc).__name__}: {exc}")
            next_at += 1 / REQUESTS_PER_SECOND
            time.sleep(max(0.0, next_at - time.monotonic()))


def start_release(fake, tmp_path: Path) -> ProxyServer:
    server = ProxyServer(base_config(fake.url), tmp_path / "state", workers=2, root=release(tmp_path),
                         env={"PYTHONPATH": str(tmp_path / "opt-ollama-proxy")})
    fake.script(STREAM_MODEL + ":latest", reply=STREAM_REPLY, chunk_delay=CHUNK_DELAY)
    fake.script(QUICK_MODEL, reply="ok")
    return start_server(server)


def test_a_reload_across_a_migration_under_load_fails_nothing_and_runs_the_new_code(fake, tmp_path):
    server = start_release(fake, tmp_path)
    load = Load(server.url)
    try:
        old_revision = store_revision(server)
        old_workers = server.worker_pids()
        load.start()  # every stream has its first chunk: all run on the old workers
        new_revision = pull(server.root, GOOD_MIGRATION)
        reloaded = exec_reload(server)
        assert [step.returncode for step in reloaded] == [0] * len(reloaded), [s.stderr for s in reloaded]
        print(f"reload asked with {STREAMS} streams open; store {old_revision} -> {store_revision(server)}")
        assert wait_for(lambda: not server.worker_pids() & old_workers, timeout=STREAM_CHUNKS * CHUNK_DELAY + 20)
        assert wait_for(lambda: len(server.worker_pids()) == 2)
        time.sleep(1.0)  # a second of requests on the new workers alone
        load.finish()
        marks = [requests.get(server.url + "/upgrade-mark", headers=auth(), timeout=10).json() for _ in range(6)]
        with sqlite3.connect(server.workdir / "store.db") as db:
            migrated_at = db.execute("SELECT migrated_at FROM upgrade_rehearsal").fetchone()[0]
    finally:
        load.finish()
        server.stop()
    new_answers = [at for at, mark in load.answers if mark == "new"]
    print(f"{len(load.streams)} streams ended, {len(load.answers)} requests answered "
          f"({len(new_answers)} by the new code), {len(load.errors)} errors")
    assert load.errors == []
    assert len(load.streams) == STREAMS and all(s.count('"done":true') == 1 for s in load.streams)
    assert all("".join(re.findall(r'"content":"([^"]*)"', s)) == STREAM_REPLY for s in load.streams)
    assert len(load.answers) >= REQUESTS_PER_SECOND * STREAM_CHUNKS * CHUNK_DELAY * 0.7
    assert marks == [{"package": "new", "config": "new", "worker": "new"}] * 6
    assert new_answers and load.answers[-1][1] == "new"
    assert store_revision(server) == new_revision != old_revision
    assert migrated_at < min(new_answers), "a new worker answered before the migration ran"
    assert "reload refused" not in server.stderr() and "Worker failed to boot" not in server.stderr()


def test_a_failing_migration_refuses_the_reload_and_the_old_workers_go_on(fake, tmp_path):
    server = start_release(fake, tmp_path)
    try:
        old_revision = store_revision(server)
        old_workers = server.worker_pids()
        pull(server.root, FAILING_MIGRATION)
        reloaded = exec_reload(server)
        # systemctl reload fails at the check, saying why, and gunicorn is never signalled.
        assert reloaded[-1].returncode != 0 and "kill" not in reloaded[-1].args[0], reloaded[-1].args
        assert "rehearsed failure: this migration cannot run" in reloaded[-1].stderr
        assert "upgrade refused, the running service is left as it is" in reloaded[-1].stderr
        # A HUP sent by hand, around the unit's check, is refused by gunicorn's master the same way.
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload refused" in server.stderr(), timeout=30), server.stderr()
        assert "rehearsed failure: this migration cannot run" in server.stderr()
        time.sleep(1.0)  # time enough for new workers to boot, if the refusal had let any start
        answer = requests.post(server.url + "/api/chat", headers=auth(), timeout=10,
                               json={"model": QUICK_MODEL, "messages": [{"role": "user", "content": "x"}],
                                     "stream": False})
        assert answer.status_code == 200 and MARK_HEADER not in answer.headers, "not the old code's answer"
        assert server.worker_pids() == old_workers and server.process.poll() is None
        assert store_revision(server) == old_revision
    finally:
        server.stop()


def test_a_worker_that_first_opens_the_store_after_a_newer_migration_serves_on(fake, tmp_path):
    """Workers only check the store. Another instance sharing it (as on PostgreSQL) is upgraded first and migrates
    it: this instance's workers, opening it only then, serve on with the code they run."""
    server = start_release(fake, tmp_path)
    try:
        store = server.open_store()
        secret = store.create_key("early", by=TESTER)[1]
        store.close()
        workers = server.worker_pids()
        other = release(tmp_path / "other-instance")
        new_revision = pull(other, GOOD_MIGRATION)
        migrated = subprocess.run([sys.executable, "-m", "ollama_proxy.upgrade"], cwd=other, capture_output=True,
                                  text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(other),
                                                               "OLLAMA_PROXY_CONFIG": str(server.config_path)})
        assert migrated.returncode == 0, migrated.stderr
        assert store_revision(server) == new_revision
        body = {"model": QUICK_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": False}
        answers = [requests.post(server.url + "/api/chat", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {secret}"}) for _ in range(6)]
        assert [answer.status_code for answer in answers] == [200] * 6, answers[-1].text
        assert all(MARK_HEADER not in answer.headers for answer in answers), "not the old workers' answers"
        assert server.worker_pids() == workers and store_revision(server) == new_revision
    finally:
        server.stop()


def test_a_reload_and_a_stop_with_the_scheduler_on_log_no_fault(fake, start_proxy):
    """The worker that decides who runs next closes its lines as it stops: that is no failed connection."""
    config = base_config(fake.url)
    del config["service"]["scheduling"]  # on, as a team runs it
    server = start_proxy(config, workers=2)
    fake.script(QUICK_MODEL, reply="ok")
    body = {"model": QUICK_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": False}
    for _ in range(4):
        assert requests.post(server.url + "/api/chat", json=body, headers=auth(), timeout=10).status_code == 200
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: server.stderr().count("Booting worker") == 4, timeout=30), server.stderr()
    # The old arbiter hands over only once its worker has exited, up to a second after the reload.
    assert wait_for(lambda: server.stderr().count("now decides who runs next") >= 2, timeout=30), \
        "no new worker took over deciding who runs next"
    assert requests.post(server.url + "/api/chat", json=body, headers=auth(), timeout=10).status_code == 200
    assert server.stop() == 0
    assert "scheduler connection failed" not in server.stderr(), server.stderr()
