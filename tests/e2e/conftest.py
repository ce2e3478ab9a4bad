"""Fixtures: the real proxy (one for the whole session, more per test), llama-server, the deploy's tools, a browser.

The fakes they run over are in tests/conftest.py.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.browser import close_pages, launch
from tests.e2e.llama import LlamaServer
from tests.e2e.server import ROOT, ProxyServer

GENERATE = "gen-token-0123456789"
ALICE = "alice-token-abcdefghij"
MANAGE = "manage-token-zyxwvut"
SCRAPE = "metrics-token-qwertyuiop"
LAB_KEY = "lab-key-0123456789abcdef"  # what llama-server checks, from the proxy's environment
SECRETS = (GENERATE, ALICE, MANAGE, SCRAPE)
MAX_BODY = 1024 * 1024
ALLOWED_ORIGIN = "http://chat.example.lan"


# The fake Ollama, out of its slot mode, runs every request at once and never reloads a model: the
# proxy is told so, as a team tells it what its servers run. Tests of the scheduler run the fake in
# slot mode with real figures (test_scheduling.py); tests of what passes through send at once.
AT_ONCE = {"scheduling": False}


def base_config(upstream_url: str, **service) -> dict:
    return {
        "auth": {"generate_tokens": [GENERATE, {"name": "alice", "token": ALICE}],
                 "manage_tokens": [{"name": "admin", "token": MANAGE}]},
        "service": {"base_url": upstream_url, "read_timeout": 30, "connect_timeout": 2, **AT_ONCE, **service},
        "limits": {"max_body_bytes": MAX_BODY, "max_blob_bytes": 8 * MAX_BODY},
        "cors": {"origins": [ALLOWED_ORIGIN]},
        "metrics": {"tokens": [{"name": "prometheus", "token": SCRAPE}]},
    }


LAST = "tests/e2e/test_log_secrets.py"


def pytest_collection_modifyitems(items):
    """Run the scan of every log the test servers wrote after every other test."""
    items.sort(key=lambda item: item.nodeid.startswith(LAST))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama-server with SmolLM2-135M; scripts/install-llama-server.sh installs it."""
    server = LlamaServer(tmp_path_factory.mktemp("llama"), api_key=LAB_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy(fake_server, tmp_path_factory):
    server = ProxyServer(base_config(fake_server.url), tmp_path_factory.mktemp("proxy")).start()
    yield server
    server.stop()


@pytest.fixture
def start_proxy(tmp_path):
    """Start extra proxies with their own configuration; stopped after the test."""
    servers = []

    def start(config: dict, **kwargs) -> ProxyServer:
        server = ProxyServer(config, tmp_path / f"proxy{len(servers)}", **kwargs)
        servers.append(server)
        return server.start()

    yield start
    close_pages()  # a test's browser pages first: their connections would hold each worker's stop
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def test_services():
    """Install nginx, systemd-analyze and logrotate when missing (a no-op when they are there)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "install-test-services.sh")],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, for the admin page's tests (closed after each module)."""
    playwright, chromium = launch()
    yield chromium
    chromium.close()
    playwright.stop()


def auth(token: str = GENERATE) -> dict:
    return {"Authorization": f"Bearer {token}"}
