"""Start the real proxy (gunicorn, gevent workers) on a free port, as a user would."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"


def die_with_parent() -> None:
    """Have the kernel stop a child server when the test process dies (Linux)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen | None, timeout: float, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to a running process and wait for it; kill it if it outlives ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProxyServer:
    """One gunicorn process tree serving the proxy with a given configuration."""

    def __init__(self, config: dict, workdir: Path, *, workers: int = 2, env: dict | None = None,
                 bind: str | None = None, root: Path = ROOT):
        """``root``: the checkout gunicorn runs from, with its deploy/gunicorn.conf.py (default: this one)."""
        self.root = root
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        config.setdefault("logging", {}).setdefault("dir", str(workdir / "logs"))
        config.setdefault("store", {}).setdefault("url", f"sqlite:///{workdir / 'store.db'}")
        config.setdefault("ratelimit", {}).setdefault("storage_url", f"sqlite:///{workdir / 'ratelimit.db'}")
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_dir = Path(config["logging"]["dir"])
        self.port = free_port()
        self.bind = bind or f"127.0.0.1:{self.port}"
        self.url = f"http://{self.bind}"
        self.stderr_path = workdir / "gunicorn.stderr"
        self.workers = workers
        self.env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> ProxyServer:
        # Each server its own metrics directory, unless the test names one.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_PROXY_", "PROMETHEUS_"))}
        env.update(OLLAMA_PROXY_CONFIG=str(self.config_path), **self.env)
        argv = [sys.executable, "-m", "gunicorn", "-c", str(self.root / "deploy" / "gunicorn.conf.py"), "-b",
                self.bind, "--workers", str(self.workers), "wsgi:app"]
        self._stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(argv, cwd=self.root, env=env, stdout=self._stderr, stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_parent)
        wait_until_listening(self.url, self.process, timeout, self.stderr_path)
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        # A client's answer left in a reference cycle keeps its socket open (the answer's file holds it), and a
        # stopping worker waits out the keep-alive of every open connection (ollama_proxy/worker.py): 5 s. The
        # collection closes such sockets; that they were left to it is no fault of the server stopping.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        stop_process(self.process, timeout)
        self._stderr.close()
        return self.process.returncode

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def access_lines(self) -> list[str]:
        """The access log's lines that have their end: the writer's buffer may have flushed half of the last one."""
        path = self.log_dir / "access.log"
        text = path.read_text() if path.exists() else ""
        return text[:text.rfind("\n") + 1].splitlines()

    def access_entry(self, request_id: str, timeout: float = 5.0) -> dict:
        """Return the access-log entry of one request, waiting for it: it is written when the response closes."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.access_lines():
                if request_id in line:
                    return json.loads(line)
            if time.monotonic() > deadline:
                raise AssertionError(f"no access line for request {request_id} within {timeout}s")
            time.sleep(0.05)

    def worker_pids(self) -> set[int]:
        """Return the pids of gunicorn's live workers (the master's children that are not zombies)."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a process that went away meanwhile
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                pids.add(int(stat.parent.name))
        return pids

    def open_store(self, **options):
        """Open the store this server uses: its configuration's store.url."""
        url = yaml.safe_load(self.config_path.read_text())["store"]["url"]
        return open_store(StoreSettings(url, 5.0), **options)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def start_server(server: ProxyServer, timeout: float = 60.0) -> ProxyServer:
    """Start gunicorn and wait for its /health.

    ProxyServer.start gives up when the first /health takes over its 1 s read timeout; on a
    busy machine the workers may still be importing the app then (gunicorn listens before
    they boot), so that case is waited out here.
    """
    try:
        return server.start(timeout)
    except requests.Timeout:
        def healthy() -> bool:
            try:
                return requests.get(server.url + "/health", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        assert wait_for(healthy, timeout), f"gunicorn did not answer within {timeout}s:\n{server.stderr()}"
        return server


def wait_until_listening(url: str, process: subprocess.Popen | None, timeout: float, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text() if log else ''}")
        try:
            requests.get(url + "/health", timeout=1).close()
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start within {timeout}s")


@contextmanager
def fake_ollamas_apart(count: int, chunk_delay: float) -> Iterator[list[str]]:
    """``count`` fake Ollama servers of one slot each, in processes of their own (what one parses stalls nothing in
    the test's process); their URLs."""
    started = []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen([sys.executable, "-m", "tests.fakes.ollama", "--port", str(port),
                                        "--num-parallel", "1", "--max-loaded-models", "1", "--chunk-delay",
                                        str(chunk_delay)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
            started.append((f"http://127.0.0.1:{port}", process))
        for url, process in started:
            wait_until_listening(url, process, 30)
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            stop_process(process, 10)

