"""Start the two servers under test: the fake upstream, and the real proxy in front of it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.e2e.server import ProxyServer, die_with_parent, free_port

TOKEN = "bench-token-0123456789"
ROOT = Path(__file__).resolve().parents[1]


def proxy_config(upstream_url: str, log_dir: Path) -> dict:
    """Return a configuration like the end-to-end tests' base_config, for one token."""
    return {
        "auth": {"generate_tokens": [{"name": "bench", "token": TOKEN}]},
        # The fake upstream runs every request at once: the proxy is told so, and its scheduler admits
        # every GPU request at once; what admission costs is in the figures.
        "service": {"base_url": upstream_url, "read_timeout": 30, "connect_timeout": 2, "num_parallel": 100_000,
                    "max_loaded_models": 1_000},
        "logging": {"dir": str(log_dir)},
    }


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Return once 127.0.0.1:port accepts connections; raise if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


@contextlib.contextmanager
def serving(argv_on_port: Callable[[int], list[str]], env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run ``argv_on_port(port)`` on a free port, from the project root; yield the process with ``.port`` set once
    the port accepts connections; stop it after."""
    port = free_port()
    process = subprocess.Popen(argv_on_port(port), cwd=ROOT, env=env, preexec_fn=die_with_parent)
    process.port = port
    try:
        wait_for_port(port, process)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def fake_upstream(rate: float) -> contextlib.AbstractContextManager[subprocess.Popen]:
    """Run the fake upstream in its own process; yield it with ``.port`` set."""
    return serving(lambda port: [sys.executable, "-m", "bench.fake_upstream", "--port", str(port), "--rate", str(rate)])


@contextlib.contextmanager
def proxy(upstream_port: int, workers: int, env: dict | None = None) -> Iterator[ProxyServer]:
    """Run the real proxy (gunicorn, gevent workers) in front of the fake upstream."""
    with tempfile.TemporaryDirectory(prefix="ollama-proxy-bench-") as workdir:
        config = proxy_config(f"http://127.0.0.1:{upstream_port}", Path(workdir) / "logs")
        server = ProxyServer(config, Path(workdir), workers=workers, env=env).start()
        try:
            yield server
        finally:
            server.stop()
