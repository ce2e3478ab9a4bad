"""The deploy files at work: nginx's site in front of the real server, signals, logrotate, the unit.

A real nginx (tests/e2e/nginx.py: Debian's package, installed by scripts/install-test-services.sh)
serves a copy of deploy/nginx.conf whose listen and upstream ports are rewritten to free ones;
gunicorn runs as in production, from deploy/gunicorn.conf.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.conftest import MANAGE, auth, base_config
from tests.e2e.nginx import Nginx, current_user, tool
from tests.e2e.server import DEPLOY, ROOT, ProxyServer, start_server, wait_for

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
RELOADED_TOKEN = "reloaded-token-0123456789"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def gunicorn(fake_server, tmp_path_factory, test_services):
    server = ProxyServer(base_config(fake_server.url), tmp_path_factory.mktemp("deploy-proxy"), workers=2)
    try:
        yield start_server(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nginx(gunicorn, tmp_path_factory):
    front = Nginx(gunicorn.port, tmp_path_factory.mktemp("nginx"))
    try:
        front.start()
        assert wait_for(lambda: requests.get(front.url + "/health", timeout=5).status_code == 200), front.logs()
        yield front
    finally:
        front.stop()


def timed_lines(url: str, body: dict) -> tuple[requests.Response, list[tuple[float, bytes]]]:
    """POST body and return the response and each non-empty line with its arrival time."""
    started = time.monotonic()
    with requests.post(url, headers=auth(), json=body, stream=True, timeout=30) as answer:
        lines = [(time.monotonic() - started, line) for line in answer.iter_lines() if line]
    return answer, lines


def assert_chunk_by_chunk(arrivals: list[float], delay: float, label: str) -> None:
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    print(f"{label} through nginx, arrivals (s): {[round(a, 3) for a in arrivals]}; "
          f"gaps: {[round(g, 3) for g in gaps]}")
    assert arrivals[0] < delay * 2, "the first chunk waited for later ones"
    assert all(gap > delay * 0.5 for gap in gaps), "chunks were buffered together"


def test_ndjson_stream_arrives_chunk_by_chunk_through_nginx(nginx, fake):
    delay, count = 0.2, 6
    fake.script("llama3.2:latest", reply=" ".join(["word"] * count), chunk_delay=delay)
    answer, lines = timed_lines(nginx.url + "/api/chat", CHAT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-ndjson"
    parts = [json.loads(line) for _, line in lines]
    assert "".join(p["message"]["content"] for p in parts) == " ".join(["word"] * count)
    assert len(parts) == count + 1 and parts[-1]["done"]
    assert_chunk_by_chunk([at for at, _ in lines][:count], delay, "NDJSON")


def test_sse_stream_arrives_chunk_by_chunk_through_nginx(nginx, fake):
    delay, count = 0.2, 6
    fake.script("llama3.2:latest", reply=" ".join(["word"] * count), chunk_delay=delay)
    answer, lines = timed_lines(nginx.url + "/v1/chat/completions", {**CHAT, "stream": True})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert lines[-1][1] == b"data: [DONE]"
    events = [(at, json.loads(line.removeprefix(b"data: "))) for at, line in lines[:-1]]
    content = [(at, e["choices"][0]["delta"]["content"]) for at, e in events
               if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert "".join(text for _, text in content) == " ".join(["word"] * count)
    assert_chunk_by_chunk([at for at, _ in content], delay, "SSE")


def test_blob_upload_larger_than_a_mebibyte_passes_through_nginx(nginx, fake):
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: over the JSON body limit of this proxy (1 MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    answer = requests.post(f"{nginx.url}/api/blobs/{digest}", data=data, headers=auth(MANAGE), timeout=30)
    assert answer.status_code == 201, answer.text
    assert fake.blobs[digest] == len(data)


def test_chunked_blob_upload_passes_through_nginx(nginx, fake):
    """No Content-Length: Ollama's Go client sends an io.Reader (a file, for `ollama create`) this way."""
    data = bytes(range(256)) * 4096 * 3
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pieces = (data[i:i + MiB] for i in range(0, len(data), MiB))
    answer = requests.post(f"{nginx.url}/api/blobs/{digest}", data=pieces, headers=auth(MANAGE), timeout=30)
    assert answer.status_code == 201, answer.text
    assert fake.blobs[digest] == len(data)


def test_nginx_request_id_reaches_the_proxy_access_log(nginx, gunicorn, fake):
    answer = requests.get(nginx.url + "/api/tags", headers={**auth(), "X-Request-Id": "chosen-by-the-client"},
                          timeout=10)
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), "nginx's $request_id should replace the client's"
    assert wait_for(lambda: any(json.loads(line)["request_id"] == request_id for line in gunicorn.access_lines()))
    assert wait_for(lambda: any(f"request_id={request_id}" in line for line in nginx.access_lines()))


def test_sighup_reloads_the_configuration_without_dropping_a_stream(nginx, gunicorn, fake):
    assert requests.get(nginx.url + "/api/tags", headers=auth(RELOADED_TOKEN), timeout=10).status_code == 401
    delay, count = 0.25, 8
    reply = " ".join(f"w{i}" for i in range(count))
    fake.script("llama3.2:latest", reply=reply, chunk_delay=delay)
    config = yaml.safe_load(gunicorn.config_path.read_text())
    config["auth"]["generate_tokens"].append(RELOADED_TOKEN)
    old_workers = gunicorn.worker_pids()
    with requests.post(nginx.url + "/api/chat", headers=auth(), json=CHAT, stream=True, timeout=30) as answer:
        lines = answer.iter_lines()
        parts = [json.loads(next(lines))]  # the stream runs on one of the old workers
        gunicorn.config_path.write_text(yaml.safe_dump(config))
        gunicorn.signal(signal.SIGHUP)
        parts += [json.loads(line) for line in lines if line]
    assert "".join(p["message"]["content"] for p in parts) == reply
    assert len(parts) == count + 1 and parts[-1]["done"]
    assert fake.streams[-1].completed and not fake.streams[-1].aborted
    # New workers read the new file; a request nginx sends on a kept-alive connection to an
    # old worker still meets the old configuration until that worker is gone.
    assert wait_for(lambda: requests.get(nginx.url + "/api/tags", headers=auth(RELOADED_TOKEN),
                                         timeout=5).status_code == 200, timeout=30)
    assert wait_for(lambda: not gunicorn.worker_pids() & old_workers, timeout=30)
    assert len(gunicorn.worker_pids()) == gunicorn.workers
    again = requests.post(nginx.url + "/api/chat", headers=auth(), json={**CHAT, "stream": False}, timeout=30)
    assert again.status_code == 200 and again.json()["message"]["content"] == reply
    assert "Hang up" in gunicorn.stderr()


def test_sigterm_lets_a_running_stream_finish_then_exits(fake, tmp_path, test_services):
    graceful = 20  # short, so that a server that waits it out fails the test quickly
    server = ProxyServer(base_config(fake.url), tmp_path / "proxy", workers=1,
                         env={"OLLAMA_PROXY_GRACEFUL_TIMEOUT": str(graceful)})
    front = Nginx(server.port, tmp_path / "nginx")
    try:
        start_server(server)
        front.start()
        delay, count = 0.25, 8  # a stream of about 2 s
        reply = " ".join(f"w{i}" for i in range(count))
        fake.script("llama3.2:latest", reply=reply, chunk_delay=delay)
        with requests.post(front.url + "/api/chat", headers=auth(), json=CHAT, stream=True, timeout=30) as answer:
            lines = answer.iter_lines()
            parts = [json.loads(next(lines))]
            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            parts += [json.loads(line) for line in lines if line]
        ended = time.monotonic() - signalled
        try:
            server.process.wait(graceful + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn still runs {graceful + 5}s after SIGTERM:\n{server.stderr()}")
        exited = time.monotonic() - signalled
        print(f"SIGTERM: stream ended {ended:.2f}s after it, the server exited after {exited:.2f}s")
        assert "".join(p["message"]["content"] for p in parts) == reply
        assert len(parts) == count + 1 and parts[-1]["done"]
        assert ended > delay * (count - 2), "the stream did not go on after SIGTERM"
        assert server.process.returncode == 0, server.stderr()
        # The stream's connection stays open after the stream (its headers said keep-alive before
        # TERM came): the worker waits for nginx to drop it, after keepalive_timeout (4 s).
        assert exited < ended + 7, "gunicorn waited out its graceful timeout though the stream had ended"
        gone = requests.get(front.url + "/api/tags", headers=auth(), timeout=10)
        assert gone.status_code == 502 and "error" in gone.json(), "nginx's own errors are JSON"
    finally:
        front.stop()
        server.stop()


def test_logrotate_moves_the_logs_and_workers_write_new_ones(nginx, gunicorn, fake, tmp_path):
    before = requests.get(nginx.url + "/api/tags", headers=auth(), timeout=10).headers["X-Request-Id"]
    assert wait_for(lambda: any(before in line for line in gunicorn.access_lines()))
    user, group = current_user()
    conf = (DEPLOY / "logrotate").read_text()
    assert conf.count("/var/log/ollama-proxy/") == 1 and conf.count("ollama-proxy ollama-proxy") == 2
    conf = conf.replace("/var/log/ollama-proxy/", f"{gunicorn.log_dir}/")
    conf = conf.replace("ollama-proxy ollama-proxy", f"{user} {group}")
    (tmp_path / "logrotate.conf").write_text(conf)
    done = subprocess.run([tool("logrotate"), "--force", "--state", str(tmp_path / "state"),
                           str(tmp_path / "logrotate.conf")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr
    rotated = list(gunicorn.log_dir.glob("access.log-*"))
    assert len(rotated) == 1 and before in rotated[0].read_text()
    assert (gunicorn.log_dir / "access.log").stat().st_mode & 0o777 == 0o640
    after = requests.get(nginx.url + "/api/tags", headers=auth(), timeout=10).headers["X-Request-Id"]
    assert wait_for(lambda: any(after in line for line in gunicorn.access_lines())), "a worker kept the old file"
    assert after not in rotated[0].read_text()


def unit_for_test(tmp_path: Path, extra: str = "") -> Path:
    """Write deploy/ollama-proxy.service with paths that exist here (this venv and checkout)."""
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "gunicorn").exists() and (venv_bin / "ollama-proxy").exists(), f"not a venv: {venv_bin}"
    unit = (DEPLOY / "ollama-proxy.service").read_text()
    unit, programs = re.subn(r"^(Exec\w+=)/opt/ollama-proxy/\.venv/bin/", rf"\g<1>{venv_bin}/", unit,
                             flags=re.MULTILINE)
    unit, dirs = re.subn(r"^WorkingDirectory=/opt/ollama-proxy$", f"WorkingDirectory={ROOT}", unit,
                         flags=re.MULTILINE)
    assert programs >= 1 and dirs == 1, "ExecStart or WorkingDirectory no longer point into /opt/ollama-proxy"
    path = tmp_path / "ollama-proxy.service"
    path.write_text(unit.replace("[Service]\n", f"[Service]\n{extra}"))
    return path


def verify(path: Path) -> tuple[int, list[str]]:
    """Run systemd-analyze verify; return its status and the lines about this unit.

    The user ollama-proxy need not exist: verify resolves no User= (that happens when the
    service starts), so the unit keeps its own. It does check that each Exec*= program is
    executable, hence the copy pointing at this venv and checkout. Unknown keys and bad values are only
    warnings (exit status 0), so the output is read too.
    """
    done = subprocess.run([tool("systemd-analyze"), "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, [line for line in (done.stdout + done.stderr).splitlines() if path.name in line]


def test_unit_file_passes_systemd_analyze_verify(tmp_path, test_services):
    status, complaints = verify(unit_for_test(tmp_path))
    assert status == 0 and complaints == [], complaints
    # The check bites: a misspelt setting is reported.
    misspelt = tmp_path / "misspelt"
    misspelt.mkdir()
    status, complaints = verify(unit_for_test(misspelt, extra="ProtectSytem=strict\n"))
    assert any("ProtectSytem" in line for line in complaints), complaints


def test_unit_file_is_sandboxed(tmp_path, test_services):
    """systemd's own rating, 0 (locked down) to 10 (unprotected); a bare unit with User= scores about 9."""
    done = subprocess.run([tool("systemd-analyze"), "security", "--offline=true", str(unit_for_test(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert done.returncode == 0 and exposure, done.stdout + done.stderr
    print(f"systemd-analyze security: exposure {exposure[1]}")
    assert float(exposure[1]) <= 2.0, done.stdout


def test_container_files_copy_files_that_exist():
    """The Dockerfile and compose file are not built here (no Docker engine); their paths are checked."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = [src for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, flags=re.MULTILINE)
               for src in line.split()[:-1] if not src.startswith("--")]
    assert sources and all((ROOT / src).exists() for src in sources), sources
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    build = compose["services"]["ollama-proxy"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
