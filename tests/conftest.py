"""Fixtures shared by the unit and end-to-end tests: the fake upstreams, and real services on loopback."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests import file_order
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_provider import PROVIDER_KEY, FakeProvider
from tests.services import ServiceNotInstalled
from tests.services.postgres import PostgresCluster
from tests.services.redis import RedisServer

# The outside tools some tests start, each with the marker that leaves them out (-m "not codex"): a test
# gets it when it uses a fixture that starts the tool, and every test of a module gets it when the module
# imports a helper that runs the tool. Registered in setup.cfg; tests/unit/test_markers.py keeps it whole.
OUTSIDE_TOOLS = {
    "llamacpp": ({"llama_server"}, {"tests.e2e.llama", "tests.e2e.ollama_on_llama"}),
    "claude_code": (set(), {"tests.e2e.claude_code"}),
    "codex": (set(), {"tests.e2e.codex"}),
    "js": (set(), {"tests.e2e.js_clients", "tests.e2e.oidc_provider"}),
    "browser": ({"browser"}, {"tests.e2e.browser"}),
    "postgres": ({"postgres_cluster", "_postgres_server"}, {"tests.services.postgres"}),
    "redis": ({"redis_server"}, {"tests.services.redis"}),
    "go": (set(), {"tests.go_reader"}),
    "nginx": ({"test_services"}, set()),  # every test that starts nginx asks for test_services first
}


@functools.cache
def imported_modules(path: Path) -> frozenset[str]:
    """Return the modules a test file imports, as written (``from tests.e2e import codex`` gives both names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def outside_tools(path: Path, fixtures) -> set[str]:
    """Name the markers of the outside tools a test of ``path`` using ``fixtures`` starts."""
    imported = imported_modules(path) if path.suffix == ".py" else frozenset()
    return {marker for marker, (starters, helpers) in OUTSIDE_TOOLS.items()
            if starters.intersection(fixtures) or helpers & imported}


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(items):
    """Mark every test with the outside tools it starts, so that ``-m "not <tool>"`` leaves it out."""
    for item in items:
        for marker in outside_tools(item.path, getattr(item, "fixturenames", ())):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def pytest_configure(config):
    config.pluginmanager.register(file_order, "file_order")  # the slowest files first, under xdist


@pytest.fixture(scope="session")
def fake_server():
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(fake_server):
    fake_server.reset()
    return fake_server


@pytest.fixture(scope="session")
def provider_server():
    """The fake OpenAI-compatible provider; it accepts ``PROVIDER_KEY``."""
    with FakeProvider(PROVIDER_KEY) as provider:
        yield provider


@pytest.fixture
def provider(provider_server):
    provider_server.reset()
    return provider_server


@pytest.fixture(autouse=True)
def _unscripted_fakes(request):
    """Every test meets the shared fakes unscripted, whichever fixture brought them in."""
    for name in ("fake_server", "provider_server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def _require_marker(request, marker: str) -> None:
    """Fail a test that starts a service without the marker that ``-m "not <marker>"`` leaves out."""
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(f"{request.node.nodeid} starts a {marker} server: mark it @pytest.mark.{marker}", pytrace=False)


def _start(service, marker: str):
    """Start a service; where it is not installed, fail saying how to install it or leave its tests out."""
    try:
        server = service()
    except ServiceNotInstalled as missing:
        reason = str(missing)
    else:
        return server.start()
    pytest.fail(f'{reason}; or leave out the tests that need it: -m "not {marker}"', pytrace=False)


@pytest.fixture(scope="session")
def _postgres_server():
    cluster = _start(PostgresCluster, "postgres")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_cluster(request):
    """A PostgreSQL server for the whole session, started on first use, for tests marked ``postgres``."""
    _require_marker(request, "postgres")
    return request.getfixturevalue("_postgres_server")


@pytest.fixture
def redis_server(request):
    """A redis-server of the test's own, for tests marked ``redis``."""
    _require_marker(request, "redis")
    server = _start(RedisServer, "redis")
    yield server
    server.stop()
