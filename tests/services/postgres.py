"""Start a throwaway PostgreSQL cluster on a free loopback port, and stop it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text

from tests.e2e.server import free_port
from tests.services import ServiceNotInstalled

# PostgreSQL refuses to run as root (CI runs as root): the cluster then runs as this user.
UNPRIVILEGED_USER = "nobody"


def postgres_bin() -> str:
    """Return the directory holding initdb and pg_ctl (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise ServiceNotInstalled("PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql): "
                                  "run scripts/install-test-services.sh as root (Debian package postgresql)")
    return os.path.dirname(versions[-1])


class PostgresCluster:
    """One initdb'd cluster in a temporary directory, reachable over TCP on 127.0.0.1."""

    def __init__(self):
        self.bin = postgres_bin()
        self.dir = tempfile.mkdtemp(prefix="ollama-proxy-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [os.path.join(self.bin, argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._start()
        return self

    def _start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "start")

    def restart(self, down_for: float) -> None:
        """Stop the server as a crash would (every connection cut), leave it down ``down_for`` seconds, start it."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        time.sleep(down_for)
        self._start()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def admin_engine(self):
        """An engine on the server's own database, each statement committed as it runs (dispose of it after)."""
        return create_engine(self.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        engine = self.admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url.rsplit("/", 1)[0] + "/" + name
