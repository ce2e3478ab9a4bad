"""What the arbiter reads of each server: the models /api/ps lists, and how /api/show says Ollama runs them."""

from types import SimpleNamespace

from ollama_proxy.errors import UpstreamUnavailable
from ollama_proxy.scheduler.decisions.runners import KV_BYTES_UNKNOWN
from ollama_proxy.scheduler.decisions.servers import Loaded
from ollama_proxy.scheduler.transport.instance import ModelShapes, loaded_models

EMBED = {"capabilities": ["embedding"], "details": {"family": "bert"},
         "model_info": {"general.architecture": "bert", "bert.block_count": 12, "bert.attention.head_count": 12,
                        "bert.embedding_length": 768}}


class StubPool:
    """Servers that list what they run and show each model; a server that is down answers nothing."""

    def __init__(self, running: dict[str, list[dict]], shown: dict[str, dict], down=()) -> None:
        self.running, self.shown, self.down = running, shown, set(down)
        self.shows = []

    def read_json(self, server, path):
        if server.name in self.down:
            raise UpstreamUnavailable("cannot reach")
        return {"models": self.running[server.name]}

    def show(self, server, model):
        self.shows.append((server.name, model))
        if model not in self.shown:
            raise UpstreamUnavailable("cannot reach")
        return self.shown[model]


def _servers(*names):
    return [SimpleNamespace(name=name) for name in names]


def test_each_listed_model_comes_with_its_context_and_how_ollama_runs_it_read_once():
    pool = StubPool({"gpu1": [{"name": "Llama3.2", "context_length": 8192}, {"model": "nomic-embed-text"}],
                     "gpu2": []}, {"Llama3.2": {"capabilities": ["completion"]}, "nomic-embed-text": EMBED},
                    down=())
    shapes = ModelShapes(pool)
    found = loaded_models(pool, _servers("gpu1", "gpu2"), shapes)
    assert found == {"gpu1": {"llama3.2:latest": Loaded({"num_ctx": 8192}, False, KV_BYTES_UNKNOWN),
                              "nomic-embed-text:latest": Loaded({}, True, 12 * 12 * 128 * 2)},
                     "gpu2": {}}
    loaded_models(pool, _servers("gpu1", "gpu2"), shapes)
    assert len(pool.shows) == 2  # shown once per server and model


def test_a_server_that_does_not_answer_is_left_out_and_a_model_it_cannot_show_is_asked_again():
    pool = StubPool({"gpu1": [{"name": "qwen3:8b"}]}, {}, down={"gpu2"})
    shapes = ModelShapes(pool)
    assert loaded_models(pool, _servers("gpu1", "gpu2"), shapes) == {"gpu1": {"qwen3:8b": Loaded({})}}
    loaded_models(pool, _servers("gpu1"), shapes)
    assert pool.shows == [("gpu1", "qwen3:8b")] * 2
