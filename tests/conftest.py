"""Fixtures shared by the unit and end-to-end tests: real services started on loopback."""

from __future__ import annotations

import pytest

from tests.services.postgres import PostgresCluster


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server for the whole session, started on first use."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()
