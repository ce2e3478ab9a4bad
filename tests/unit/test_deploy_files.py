"""The systemd unit lets the service write where its environment file tells it to write."""

from __future__ import annotations

import re
from pathlib import Path

from ollama_proxy.config import parse_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit_writable() -> list[Path]:
    unit = (DEPLOY / "ollama-proxy.service").read_text()
    return [Path(p) for line in re.findall(r"^ReadWritePaths=(.*)$", unit, re.M) for p in line.split()]


def _environment() -> dict[str, str]:
    env = {}
    for line in (DEPLOY / "ollama-proxy.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def _written_paths(environ: dict[str, str]) -> list[Path]:
    settings = parse_settings({}, environ=environ)
    paths = [Path(settings.logging.dir), Path(settings.admin.secret_key_file)]
    for url in (settings.store.url, settings.ratelimit.storage_url):
        if url.startswith("sqlite:///"):
            paths.append(Path(url.removeprefix("sqlite:///")))
    return paths


def test_every_file_the_service_writes_is_under_a_read_write_path():
    writable = _unit_writable()
    for path in _written_paths(_environment()):
        assert path.is_absolute(), f"{path} would be under the read-only code directory"
        assert any(path == root or root in path.parents for root in writable), \
            f"{path} is not writable under ProtectSystem=strict (ReadWritePaths={writable})"


def test_the_state_and_log_directories_are_made_by_systemd():
    unit = (DEPLOY / "ollama-proxy.service").read_text()
    assert "StateDirectory=ollama-proxy" in unit and "LogsDirectory=ollama-proxy" in unit
    assert set(_unit_writable()) == {Path("/var/log/ollama-proxy"), Path("/var/lib/ollama-proxy")}


def test_the_deploy_environment_trusts_the_one_nginx_in_front():
    assert parse_settings({}, environ=_environment()).service.trusted_proxies == 1


_WORKER_STARTS = """
import gc, runpy, sys, types
conf = runpy.run_path(sys.argv[1])
worker = types.SimpleNamespace()
conf["post_worker_init"](worker)
print(*gc.get_threshold(), worker.accept_per_turn)
"""


def test_a_worker_collects_its_youngest_garbage_as_the_environment_says():
    import os
    import subprocess
    import sys

    def thresholds(**environ: str) -> list[int]:
        # A process of its own: the worker's hook freezes the heap and sets the collector for good.
        done = subprocess.run([sys.executable, "-c", _WORKER_STARTS, str(DEPLOY / "gunicorn.conf.py")],
                              env={**os.environ, **environ}, capture_output=True, text=True, timeout=60, check=True)
        return [int(n) for n in done.stdout.split()]

    assert thresholds()[0] == 50_000
    assert thresholds(OLLAMA_PROXY_GC_THRESHOLD="9000")[0] == 9000


def test_a_worker_takes_as_many_new_connections_a_turn_as_the_environment_says():
    import os
    import subprocess
    import sys

    def started(**environ: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _WORKER_STARTS, str(DEPLOY / "gunicorn.conf.py")],
                              env={**os.environ, **environ}, capture_output=True, text=True, timeout=60)

    assert int(started().stdout.split()[-1]) == 8
    assert int(started(OLLAMA_PROXY_ACCEPT_PER_TURN="2").stdout.split()[-1]) == 2
    refused = started(OLLAMA_PROXY_ACCEPT_PER_TURN="0")
    assert refused.returncode != 0 and "OLLAMA_PROXY_ACCEPT_PER_TURN is 0" in refused.stderr
    assert "Traceback" not in refused.stderr
