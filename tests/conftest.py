"""Fixtures shared by the unit and end-to-end tests: the fake upstreams, and real services on loopback."""

from __future__ import annotations

import pytest

from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_provider import PROVIDER_KEY, FakeProvider
from tests.services import ServiceNotInstalled
from tests.services.postgres import PostgresCluster
from tests.services.redis import RedisServer


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
