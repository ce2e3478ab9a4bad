"""Per-principal rate limits through the real server: exact across workers, in each surface's shape."""

from __future__ import annotations

import copy
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai
import pytest
import requests

from tests.e2e.conftest import GENERATE, auth, base_config

LIMITED = "limited-token-0123456789"
RPM = 40
HAMMER = 160  # requests sent at once: four times the limit
HEADERS = ("limit", "remaining", "reset")


def limited_config(upstream_url: str, **limits) -> dict:
    config = base_config(upstream_url)
    config["auth"]["generate_tokens"].append({"name": "limited", "token": LIMITED, **limits})
    return config


def hammer(ports: list[int], count: int, token: str = LIMITED) -> list[int]:
    """Open ``count`` connections, in turn to each port, then send a request on each at once; return their statuses."""
    connections = [http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=60) for n in range(count)]
    for connection in connections:
        connection.connect()
    return send_at_once(connections, token)


def started_workers(proxy, count: int, timeout: float = 30.0) -> list[int]:
    """Return the pids of the proxy's ``count`` worker processes, waiting for them to start."""
    deadline = time.monotonic() + timeout
    while True:
        workers = proxy.worker_pids()
        if len(workers) == count or time.monotonic() > deadline:
            assert len(workers) == count, f"{len(workers)} workers, not {count}"
            return sorted(workers)
        time.sleep(0.05)


def accepted(server_port: int, client_ports: set[int]) -> bool:
    """Tell whether the server has accepted every connection from these client ports.

    A connection still in the listen backlog belongs to no process: its inode in
    /proc/net/tcp is 0 until a worker accepts it.
    """
    found = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local_port == server_port and remote_port in client_ports:
            if fields[9] == "0":
                return False
            found += 1
    return found == len(client_ports)


def pinned_connections(proxy, per_worker: int) -> list[http.client.HTTPConnection]:
    """Open ``per_worker`` connections to each worker of the proxy, whatever the kernel would choose.

    While one worker accepts its connections the others are stopped (SIGSTOP), so
    that worker is the only one that can take them from the shared listen socket.
    """
    workers = started_workers(proxy, proxy.workers)
    connections = []
    for worker in workers:
        others = [pid for pid in workers if pid != worker]
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            mine = [http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60) for _ in range(per_worker)]
            for connection in mine:
                connection.connect()
            ports = {connection.sock.getsockname()[1] for connection in mine}
            deadline = time.monotonic() + 30
            while not accepted(proxy.port, ports):
                assert time.monotonic() < deadline, f"worker {worker} did not accept its connections"
                time.sleep(0.01)
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)
        connections += mine
    return connections


def send_at_once(connections: list[http.client.HTTPConnection], token: str = LIMITED) -> list[int]:
    """Send one request on each open connection, all at once; return their statuses."""
    ready = threading.Barrier(len(connections))

    def one(connection: http.client.HTTPConnection) -> int:
        try:
            ready.wait(timeout=60)
            connection.request("GET", "/api/tags", headers=auth(token))
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(connections)) as pool:
        return list(pool.map(one, connections))


def test_four_workers_admit_exactly_the_limit(start_proxy, fake):
    # Idle connections stay open while the others are pinned: well past the time pinning takes.
    proxy = start_proxy(limited_config(fake.url, rpm=RPM), workers=4, env={"OLLAMA_PROXY_KEEPALIVE": "120"})
    # Each worker holds as many requests as the limit: workers counting alone would admit all 160.
    statuses = send_at_once(pinned_connections(proxy, HAMMER // 4))
    print(f"{HAMMER} requests at once, {HAMMER // 4} on each of 4 workers, rpm {RPM}: "
          f"{statuses.count(200)} admitted, {statuses.count(429)} refused")
    assert (statuses.count(200), statuses.count(429)) == (RPM, HAMMER - RPM), Counter(statuses)
    assert requests.get(proxy.url + "/api/tags", headers=auth(GENERATE)).status_code == 200  # others unaffected


def test_headers_on_every_answer_and_429_in_each_surface(start_proxy, fake):
    proxy = start_proxy(limited_config(fake.url, rpm=2, tpm=1000))
    first = requests.get(proxy.url + "/api/tags", headers=auth(LIMITED))
    assert first.status_code == 200
    assert {f"x-ratelimit-{h}-{kind}" for h in HEADERS for kind in ("requests", "tokens")} <= set(first.headers)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "1000"
    assert requests.get(proxy.url + "/api/tags", headers=auth(LIMITED)).status_code == 200

    native = requests.post(proxy.url + "/api/chat", headers=auth(LIMITED), json={"model": "llama3.2"})
    assert native.status_code == 429
    assert "2 requests per minute" in native.json()["error"]
    assert 1 <= int(native.headers["Retry-After"]) <= 60
    assert native.headers["x-ratelimit-remaining-requests"] == "0"
    assert native.headers["x-ratelimit-reset-requests"].endswith("s")

    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=LIMITED, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["type"] == "rate_limit_error" and caught.value.body["code"] == "rate_limit_exceeded"
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "2"

    claude = anthropic.Anthropic(base_url=proxy.url, api_key=LIMITED, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="llama3.2", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"

    unlimited = requests.get(proxy.url + "/api/tags", headers=auth(GENERATE))
    assert unlimited.status_code == 200 and "x-ratelimit-limit-requests" not in unlimited.headers


@pytest.mark.redis
def test_two_instances_sharing_redis_admit_exactly_the_limit_between_them(start_proxy, fake, redis_server):
    config = limited_config(fake.url, rpm=RPM)
    config["ratelimit"] = {"storage_url": redis_server.url}
    first, second = start_proxy(config), start_proxy(copy.deepcopy(config))
    statuses = hammer([first.port, second.port], HAMMER)
    split = statuses[0::2].count(200), statuses[1::2].count(200)
    print(f"{HAMMER} requests at once on two instances sharing Redis, rpm {RPM}: {split[0]} + {split[1]} "
          f"admitted, {statuses.count(429)} refused")
    # Counted apart, each instance would admit up to RPM of its half: only a shared count admits RPM in all.
    assert (statuses.count(200), statuses.count(429)) == (RPM, HAMMER - RPM), Counter(statuses)


def test_tokens_are_charged_when_the_answer_ends(start_proxy, fake):
    proxy = start_proxy(limited_config(fake.url, tpm=5))
    answer = requests.post(proxy.url + "/api/chat", headers=auth(LIMITED), json={
        "model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "count these words please"}]})
    assert answer.status_code == 200 and answer.headers["x-ratelimit-remaining-tokens"] == "5"
    used = answer.json()["prompt_eval_count"] + answer.json()["eval_count"]
    assert used > 5  # admitted under the limit, it may take the count past it

    deadline = time.monotonic() + 5  # the charge lands as the response closes, just after the client has it
    while (after := requests.get(proxy.url + "/api/tags", headers=auth(LIMITED))).status_code == 200:
        assert time.monotonic() < deadline, after.headers
        time.sleep(0.05)
    assert after.status_code == 429 and "5 tokens per minute" in after.json()["error"]
    assert after.headers["x-ratelimit-remaining-tokens"] == "0"


def test_counters_in_a_directory_still_to_be_made_limit_as_the_default_file_does(start_proxy, fake, tmp_path):
    config = limited_config(fake.url, rpm=3)
    counters = tmp_path / "state" / "not" / "made" / "yet" / "ratelimit.db"
    config["ratelimit"] = {"storage_url": f"sqlite:///{counters}"}
    proxy = start_proxy(config)
    statuses = [requests.get(proxy.url + "/api/tags", headers=auth(LIMITED), timeout=30).status_code
                for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert counters.is_file()


@pytest.mark.parametrize("where", ["under a file", "a directory", "a directory to make"])
def test_counters_that_cannot_be_kept_stop_the_start_and_fail_check_config(start_proxy, fake, tmp_path, where):
    blocker = tmp_path / "blocker"
    if where == "under a file":
        blocker.write_text("not a directory")
        counters = blocker / "ratelimit.db"
    elif where == "a directory":
        blocker.mkdir()
        counters = blocker
    else:  # its directory could be made, the file never opened: every request would be admitted
        counters = tmp_path / "blocker" / "new"
    config = limited_config(fake.url, rpm=3)
    config["ratelimit"] = {"storage_url": f"sqlite:///{counters}" + ("/" if where == "a directory to make" else "")}
    with pytest.raises(RuntimeError, match="server exited") as stopped:
        start_proxy(config)
    said = "is not a directory" if where == "under a file" else "it is a directory"
    assert f"ratelimit.storage_url: cannot keep the counters in {counters}: " in str(stopped.value)
    assert said in str(stopped.value)
    checked = subprocess.run([sys.executable, "-m", "ollama_proxy.cli", "check-config",
                              str(tmp_path / "proxy0" / "config.yaml")], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")})
    assert checked.returncode == 1, checked.stdout
    assert checked.stderr.startswith("configuration error: ratelimit.storage_url: cannot keep the counters in ")
    assert said in checked.stderr
