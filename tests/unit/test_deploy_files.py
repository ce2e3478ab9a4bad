"""The systemd unit lets the service write where its environment file tells it to write."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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


def _image_environment() -> dict[str, str]:
    """The OLLAMA_PROXY_ variables the Dockerfile's ENV sets."""
    return dict(re.findall(r"\b(OLLAMA_PROXY_\w+)=(\S+)", (DEPLOY / "Dockerfile").read_text()))


def test_every_file_the_read_only_container_writes_is_on_a_volume():
    service = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["ollama-proxy"]
    assert service["read_only"] is True
    volumes = [entry.split(":")[1] for entry in service["volumes"]] + service["tmpfs"]
    writable = [Path(path) for path in volumes]
    paths = _written_paths(_image_environment())
    assert Path("/var/lib/ollama-proxy") in writable and len(paths) == 4
    for path in paths:
        assert any(path == root or root in path.parents for root in writable), \
            f"{path} is not on a volume of deploy/compose.yaml ({writable}): the container is read-only"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    made = re.search(r"install -d -o ollama-proxy .*", dockerfile).group(0).split()
    declared = re.search(r"^VOLUME (.*)$", dockerfile, re.M).group(1)
    for root in writable[:-1]:  # a new volume takes the owner the image gave its directory (tmpfs: anyone's)
        assert str(root) in made and f'"{root}"' in declared, root


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


_SIGNALLED_WHILE_BOOTING = """
import logging, os, runpy, signal, sys
import gevent
from ollama_proxy.worker import GeventWorker
conf = runpy.run_path(sys.argv[1])
worker = object.__new__(GeventWorker)
worker.alive, worker.log = True, logging.getLogger("worker")
conf["post_fork"](None, worker)
os.kill(os.getpid(), signal.SIGTERM)  # the master's stop, while the worker still boots
read, write = os.pipe()
os.set_blocking(write, False)
worker.PIPE = (read, write)
worker.init_signals()
gevent.sleep(0.5)
print(worker.early_signals, worker.alive, worker.stop_asked.is_set())
"""


def test_a_stop_that_comes_while_a_worker_boots_stops_it():
    import os
    import signal
    import subprocess
    import sys

    # A process of its own: the hooks set signal handlers. Without the hook, the master's handler, inherited
    # with the fork, would have taken the signal and the worker would run on.
    done = subprocess.run([sys.executable, "-c", _SIGNALLED_WHILE_BOOTING, str(DEPLOY / "gunicorn.conf.py")],
                          env=os.environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"[{int(signal.SIGTERM)}]", "False", "True"], done.stdout
