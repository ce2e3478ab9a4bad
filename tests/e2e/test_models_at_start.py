"""Each worker knows its Ollama servers' models from its start (and each reload's), before any request is routed."""

from __future__ import annotations

import signal

import pytest
import requests

from tests.e2e.conftest import auth, base_config
from tests.e2e.server import ProxyServer, wait_for
from tests.fakes.ollama import FakeOllama

MODELS = ("llama3.2", "qwen3:8b", "phi4", "mistral")
ASKS = 12  # /health asked on a new connection each time, so that both workers answer some


@pytest.fixture
def servers():
    fakes = [FakeOllama().start() for _ in range(2)]
    for fake in fakes:
        fake.set_models(*MODELS)
    yield fakes
    for fake in fakes:
        fake.stop()


def counted(server) -> set[tuple[str, int | None]]:
    """Each server's number of models as /health says it, over ``ASKS`` asks."""
    seen = set()
    for _ in range(ASKS):
        answer = requests.get(server.url + "/health", headers={**auth(), "Connection": "close"}, timeout=30)
        seen |= {(upstream["name"], upstream["models"]) for upstream in answer.json()["upstreams"]}
    return seen


def test_health_counts_each_servers_models_from_the_start_and_after_a_reload(servers, tmp_path):
    config = base_config(servers[0].url)
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": servers[1].url}]
    server = ProxyServer(config, tmp_path, workers=2).start()
    try:
        assert counted(server) == {("default", 4), ("gpu2", 4)}  # never 0, nor unknown
        before = server.worker_pids()
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: len(server.worker_pids() - before) == 2, 60), server.stderr()
        assert counted(server) == {("default", 4), ("gpu2", 4)}
        assert not [call for fake in servers for call in fake.calls("/api/chat")]  # no request was routed
    finally:
        server.stop()
