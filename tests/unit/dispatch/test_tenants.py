"""Which servers a team's request may use, and whether it is told their cache figures."""

from __future__ import annotations

import pytest

from ollama_proxy.backends.pool_servers import PoolServer
from ollama_proxy.config import OllamaServerSettings
from ollama_proxy.dispatch.tenants import shows_cache, usable


def _server(name: str, teams=(), lend_idle: bool = False, in_flight: int = 0) -> PoolServer:
    return PoolServer(OllamaServerSettings(name, "http://gpu:11434", teams=tuple(teams), lend_idle=lend_idle),
                      backend=None, in_flight=in_flight)


SERVERS = [_server("shared"), _server("red", ["red"]), _server("green", ["green"]),
           _server("lent", ["red"], lend_idle=True), _server("lent-busy", ["red"], lend_idle=True, in_flight=1)]


@pytest.mark.parametrize(("team", "names"), [
    ("red", ["shared", "red", "lent", "lent-busy"]),
    ("green", ["shared", "green", "lent"]),
    (None, ["shared", "lent"]),
])
def test_a_team_uses_shared_servers_its_own_and_idle_lent_ones(team, names):
    assert [server.name for server in usable(SERVERS, team)] == names


@pytest.mark.parametrize(("server", "team", "isolation", "shown"), [
    (_server("shared"), "red", "off", True),
    (_server("shared"), "red", "team", False),
    (_server("shared"), None, "team", False),
    (_server("red", ["red"]), "red", "team", True),
    (_server("red", ["red"]), "red", "key", False),  # the team's other keys are tenants too
    (_server("both", ["red", "blue"]), "red", "team", False),
    (_server("lent", ["red"], lend_idle=True), "red", "team", False),
])
def test_cache_figures_are_shown_only_where_the_cache_holds_only_the_tenants_prompts(server, team, isolation, shown):
    assert shows_cache(server.settings, team, isolation) is shown
