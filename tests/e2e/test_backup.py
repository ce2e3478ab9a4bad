"""Backup and restore on the real server: a copy taken while it writes, put back exactly, refused while it runs."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import requests
import yaml

from ollama_proxy import __version__
from ollama_proxy.store.migrate import HEAD_REVISION
from tests.e2e.admin_page import admin_config, signed_in
from tests.e2e.command import cli, create_key
from tests.e2e.conftest import GENERATE, auth, base_config

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}


def rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, each table's rows sorted: two stores compare row for row."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as database:
        tables = [name for (name,) in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {table: sorted(database.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def key_names(path: Path) -> set[str]:
    return {row[1] for row in rows(path)["api_keys"]}


class Writer(threading.Thread):
    """Make keys with the command and send requests (usage rows) until stopped, noting when each key was made."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stop, self.made = server, threading.Event(), []  # (name, started, finished)

    def run(self):
        n = 0
        while not self.stop.is_set():
            started = time.monotonic()
            create_key(self.server, "--name", f"k{n}")
            self.made.append((f"k{n}", started, time.monotonic()))
            for _ in range(3):
                answer = requests.post(self.server.url + "/api/chat", json=CHAT, headers=auth(), timeout=30)
                assert answer.status_code == 200, answer.text
            n += 1


def second_config(server, workdir: Path) -> Path:
    """The server's configuration with the store moved to a fresh path, for a restore beside it."""
    config = yaml.safe_load(server.config_path.read_text())
    config["store"]["url"] = f"sqlite:///{workdir / 'restored' / 'store.db'}"
    path = workdir / "second.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_backup_taken_while_the_server_writes_restores_row_for_row(start_proxy, fake, tmp_path):
    config = base_config(fake.url)
    config["usage"] = {"flush_interval": 0.1}
    server = start_proxy(config, workers=2)
    writer = Writer(server)
    writer.start()
    while len(writer.made) < 3:
        time.sleep(0.05)
    began = time.monotonic()
    done = cli(server, "backup", str(tmp_path / "backup.db"))
    ended = time.monotonic()
    assert done.returncode == 0, done.stderr
    while not any(started > ended for _, started, _ in writer.made):
        time.sleep(0.05)  # a key made after the backup, in the live store
    writer.stop.set()
    writer.join(60)

    backup = rows(tmp_path / "backup.db")
    assert backup["usage"], "usage rows were written before the backup"
    names = key_names(tmp_path / "backup.db")
    assert {name for name, _, finished in writer.made if finished < began} <= names
    assert not {name for name, started, _ in writer.made if started > ended} & names
    server.config_path = second_config(server, tmp_path)  # the command's --config: a fresh store
    done = cli(server, "restore", str(tmp_path / "backup.db"))
    assert done.returncode == 0, done.stderr
    assert rows(tmp_path / "restored" / "store.db") == backup
    assert not list((tmp_path / "restored").glob("store.db-*"))  # no -wal, no -shm


def test_restore_is_refused_while_the_server_runs_and_after_it_nothing_made_since_comes_back(
        start_proxy, fake, tmp_path):
    server = start_proxy(base_config(fake.url), workers=2)
    before = create_key(server, "--name", "before")
    assert cli(server, "backup", str(tmp_path / "backup.db")).returncode == 0
    after = create_key(server, "--name", "after")
    assert requests.post(server.url + "/api/chat", json=CHAT, headers=auth(after), timeout=30).status_code == 200

    refused = cli(server, "restore", str(tmp_path / "backup.db"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the service runs on ") and "(pid " in refused.stderr
    assert "systemctl stop ollama-proxy" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert "after" in key_names(server.workdir / "store.db")  # untouched

    server.stop()
    done = cli(server, "restore", str(tmp_path / "backup.db"))
    assert done.returncode == 0, done.stderr
    assert not list(server.workdir.glob("store.db-*"))
    assert rows(server.workdir / "store.db") == rows(tmp_path / "backup.db")
    server.start()
    assert requests.post(server.url + "/api/chat", json=CHAT, headers=auth(after), timeout=30).status_code == 401
    assert requests.post(server.url + "/api/chat", json=CHAT, headers=auth(before), timeout=30).status_code == 200
    assert "after" not in cli(server, "keys", "list").stdout


def test_old_code_on_a_newer_store_says_so_in_one_line(start_proxy, fake):
    server = start_proxy(base_config(fake.url), workers=1)
    server.stop()
    with closing(sqlite3.connect(server.workdir / "store.db")) as database, database:
        database.execute("UPDATE alembic_version SET version_num = '0099'")

    done = cli(server, "keys", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("error: the store is at migration 0099, which ollama-proxy ")
    assert len(done.stderr.splitlines()) == 1
    try:
        server.start(timeout=60)
        raise AssertionError("the server started on a store it does not know")
    except RuntimeError:
        pass
    assert "the store is at migration 0099" in server.stderr()
    assert "Can't locate revision" not in server.stderr()


def test_health_and_the_admin_page_show_the_version_and_the_stores_migration(start_proxy, fake, tmp_path):
    server = start_proxy(admin_config(fake.url, tmp_path), workers=1)
    told = requests.get(server.url + "/health", headers=auth(GENERATE), timeout=30).json()
    assert (told["version"], told["store_revision"]) == (__version__, HEAD_REVISION)
    assert set(requests.get(server.url + "/health", timeout=30).json()) == {"status"}
    page = signed_in(server.url).get(server.url + "/admin/backends", timeout=30).text
    assert f"proxy version {__version__}, store at migration {HEAD_REVISION}" in page


def test_an_upgrade_backs_the_store_up_beside_it_before_it_migrates_and_says_where(start_proxy, fake, tmp_path):
    from alembic import command

    from ollama_proxy.store.engine import open_engine
    from ollama_proxy.store.migrate import ALEMBIC_IN_USE, alembic_config

    store = tmp_path / "proxy0" / "store.db"
    engine = open_engine(f"sqlite:///{store}", 5.0)
    config = alembic_config()
    with engine.begin() as connection, ALEMBIC_IN_USE:
        config.attributes["connection"] = connection
        command.upgrade(config, "0017")  # the store as an older release left it
    engine.dispose()
    old = rows(store)

    server = start_proxy(base_config(fake.url), workers=1)
    backups = list(store.parent.glob("store.db.upgrade-from-0017-*"))
    assert len(backups) == 1
    assert f"backed up to {backups[0]}" in server.stderr()
    assert rows(backups[0]) == old
    assert rows(store)["alembic_version"] == [(HEAD_REVISION,)]
