import pytest

from ollama_proxy.backends.pool_servers import PoolServer, admits, rank
from ollama_proxy.config import OllamaServerSettings


@pytest.mark.parametrize("patterns, model, expected", [
    ((), "anything", True),
    (("llama3*",), "llama3.2", True),
    (("llama3*",), "qwen3:8b", False),
    (("llama3.2:latest",), "llama3.2", True),
    (("qwen*", "phi*"), "PHI4", True),
])
def test_admits(patterns, model, expected):
    assert admits(patterns, model) is expected


def _server(name, models=(), loaded=(), in_flight=0, cool_until=0.0, max_concurrent=None, filter_=()):
    return PoolServer(OllamaServerSettings(name, f"http://{name}:11434", max_concurrent, filter_), backend=None,
                       models=frozenset(models), loaded=frozenset(loaded), in_flight=in_flight,
                       cool_until=cool_until)


@pytest.mark.parametrize("servers, model, expected", [
    ([_server("default"), _server("gpu2", ["phi4:latest"])], "phi4", ["gpu2"]),
    ([_server("default"), _server("gpu2")], "unknown", ["default"]),
    ([_server("default", ["m:latest"]), _server("gpu2", ["m:latest"], loaded=["m:latest"])], "m", ["gpu2", "default"]),
    ([_server("default", ["m:latest"], in_flight=3), _server("gpu2", ["m:latest"], in_flight=1)], "m",
     ["gpu2", "default"]),
    ([_server("default", ["m:latest"], loaded=["m:latest"], in_flight=2, max_concurrent=2),
      _server("gpu2", ["m:latest"])], "m", ["gpu2", "default"]),
    ([_server("default", ["m:latest"], cool_until=200.0), _server("gpu2", ["m:latest"], in_flight=9)], "m",
     ["gpu2", "default"]),
    ([_server("default", ["m:latest"]), _server("gpu2", ["m:latest"], filter_=("llama*",))], "m", ["default"]),
    ([_server("default"), _server("gpu2", ["m:latest"], filter_=("llama*",))], "m", ["default"]),
])
def test_rank(servers, model, expected):
    assert [s.name for s in rank(servers, model, now=100.0)] == expected
