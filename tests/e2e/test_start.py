"""The start contract, tried from outside exactly as a new user or a unit file would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.e2e.conftest import GENERATE, auth, base_config
from tests.e2e.server import GUNICORN_CONF, ROOT, die_with_parent, free_port, wait_until_listening

CLI = [sys.executable, "-m", "ollama_proxy.cli"]


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")}
    return {**env, **extra}


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        print(process.stdout.read().decode() if process.stdout else "")
        raise


def test_gunicorn_without_bind_listens_on_8080_with_the_env_config(tmp_path, fake):
    import yaml

    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8080)) != 0, "port 8080 is taken: this test needs it free"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**base_config(fake.url), "logging": {"dir": str(tmp_path / "logs")}}))
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "wsgi:app"],
                               cwd=ROOT, env=_clean_env(OLLAMA_PROXY_CONFIG=str(config)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        wait_until_listening("http://127.0.0.1:8080", process, 30)
        assert (tmp_path / "logs").is_dir()  # created at start
        assert requests.get("http://127.0.0.1:8080/api/tags", headers=auth()).status_code == 200
        fake.wait_for(lambda: (tmp_path / "logs" / "access.log").exists())
    finally:
        _stop(process)


def test_serve_command_checks_the_config_then_runs_gunicorn(tmp_path, fake):
    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**base_config(fake.url), "logging": {"dir": str(tmp_path / "logs")}}))
    port = free_port()
    process = subprocess.Popen(CLI + ["serve", "--config", str(config), "--bind", f"127.0.0.1:{port}",
                                      "--", "--workers", "1"],
                               cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=die_with_parent)
    try:
        wait_until_listening(f"http://127.0.0.1:{port}", process, 30)
        with requests.post(f"http://127.0.0.1:{port}/api/chat", headers=auth(GENERATE),
                           json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}],
                                 "stream": False}) as answer:
            assert answer.json()["message"]["content"] == "You said: hi"
    finally:
        _stop(process)
    with process.stdout:
        output = process.stdout.read().decode()
    assert f"configuration OK: {config}" in output
    assert "Using worker: ollama_proxy.worker.GeventWorker" in output  # gunicorn's gevent worker, see worker.py


def test_serve_refuses_a_bad_config_before_starting(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("service:\n  base_url: http://x:1\n  timeout: 5\n")
    result = subprocess.run(CLI + ["serve", "--config", str(config)], capture_output=True, text=True,
                            env=_clean_env(), timeout=30)
    assert result.returncode == 1
    assert "service.timeout: Unknown field" in result.stderr


def test_check_config_on_the_default_file(tmp_path):
    result = subprocess.run(CLI + ["check-config"], capture_output=True, text=True, cwd=tmp_path,
                            env=_clean_env(), timeout=30)
    assert result.returncode == 0
    assert f"configuration OK: {ROOT / 'config' / 'config.yaml'}" in result.stdout
    assert "no tokens" in result.stdout


def test_check_config_names_a_bad_key_and_fails(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("auth:\n  generate_tokens: [a]\nservice:\n  read_timeout: soon\n")
    result = subprocess.run(CLI + ["check-config", str(config)], capture_output=True, text=True,
                            env=_clean_env(), timeout=30)
    assert result.returncode == 1
    assert "service.read_timeout: Not a valid number" in result.stderr


def test_wsgi_start_stops_on_a_bad_config_with_the_key_named(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("limits:\n  max_body_bytes: lots\n")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-b",
                             f"127.0.0.1:{free_port()}", "wsgi:app"], cwd=ROOT, capture_output=True, text=True,
                            env=_clean_env(OLLAMA_PROXY_CONFIG=str(config)), timeout=60)
    assert result.returncode != 0
    assert "limits.max_body_bytes: Not a valid integer" in result.stdout + result.stderr


def test_wsgi_start_stops_when_the_store_cannot_be_opened(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "c.yaml"
    config.write_text(f"store:\n  url: sqlite:///{blocker}/store.db\nlogging:\n  dir: {tmp_path / 'logs'}\n")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-b",
                             f"127.0.0.1:{free_port()}", "wsgi:app"], cwd=ROOT, capture_output=True, text=True,
                            env=_clean_env(OLLAMA_PROXY_CONFIG=str(config)), timeout=60)
    assert result.returncode != 0
    assert str(blocker) in result.stderr and "could not be opened and migrated" in result.stderr
    assert "Booting worker" not in result.stderr


def test_serve_script_reads_a_relative_config_from_where_the_user_stands(tmp_path, fake):
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**base_config(fake.url),
                                                       "logging": {"dir": str(tmp_path / "logs")}}))
    port = free_port()
    process = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve.sh"), "--config", "cfg.yaml",
                                "--bind", f"127.0.0.1:{port}", "--", "--workers", "1"],
                               cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=die_with_parent)
    try:
        wait_until_listening(f"http://127.0.0.1:{port}", process, 60)
        assert requests.get(f"http://127.0.0.1:{port}/api/tags", headers=auth(GENERATE)).status_code == 200
    finally:
        _stop(process)
    with process.stdout:
        assert f"configuration OK: {tmp_path / 'cfg.yaml'}" in process.stdout.read().decode()


def test_the_admin_page_off_notice_is_said_once_not_per_worker_or_reload(tmp_path, fake):
    from tests.e2e.server import ProxyServer

    server = ProxyServer(base_config(fake.url), tmp_path / "proxy", workers=2).start()
    try:
        server.signal(signal.SIGHUP)  # a reload starts two new workers
        deadline = time.monotonic() + 30
        while server.stderr().count("Booting worker") < 4:
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.1)
        assert requests.get(server.url + "/api/tags", headers=auth(GENERATE), timeout=10).status_code == 200
    finally:
        server.stop()
    assert server.stderr().count("the admin page is off") == 1, server.stderr()


def test_a_stop_right_after_a_worker_died_ends_without_waiting_out_the_graceful_timeout(start_proxy):
    """The master starts a worker in the dead one's place; a stop that comes while it boots still stops it."""
    from tests.e2e import processes

    graceful = 60
    server = start_proxy(base_config(f"http://127.0.0.1:{free_port()}"), workers=2,
                         env={"OLLAMA_PROXY_GRACEFUL_TIMEOUT": str(graceful)})
    master = server.process.pid
    doomed = processes.workers(master)[0]
    os.kill(doomed, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (doomed in processes.workers(master) or len(processes.workers(master)) < 2):
        time.sleep(0.005)
    asked = time.monotonic()
    server.signal(signal.SIGTERM)  # while the new worker boots
    try:
        server.process.wait(graceful / 2)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {graceful / 2:.0f} s after SIGTERM:\n{server.stderr()}") from None
    print(f"stopped {time.monotonic() - asked:.2f} s after SIGTERM")
    assert server.process.returncode == 0, server.stderr()
