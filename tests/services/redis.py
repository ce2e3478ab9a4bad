"""Start a throwaway redis-server on a free loopback port, with its own directory, and stop it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import redis

from tests.e2e.server import die_with_parent, free_port, stop_process
from tests.services import ServiceNotInstalled


class RedisServer:
    """One redis-server that keeps nothing on disk, reachable on 127.0.0.1."""

    def __init__(self):
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
        if binary is None:
            raise ServiceNotInstalled("redis-server is not installed: run scripts/install-test-services.sh as root "
                                      "(Debian package redis-server)")
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="ollama-proxy-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> RedisServer:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        with redis.Redis.from_url(self.url, socket_timeout=1) as client:
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

    def halt(self) -> None:
        """Stop the server and keep its port: ``start`` brings it back, with nothing of what it held."""
        stop_process(self.process, 10)

    def stop(self) -> None:
        stop_process(self.process, 10)
        shutil.rmtree(self.dir, ignore_errors=True)
