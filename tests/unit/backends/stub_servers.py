"""Ollama servers reduced to what the pool and the dispatcher ask of them: models listed, a chat answered."""

import json

from ollama_proxy.backends.pool import OllamaPool
from ollama_proxy.config import OllamaServerSettings, RoutingSettings, ServiceSettings

SERVICE = ServiceSettings("http://default:11434", 1.0, 5.0, 5.0, 1.0, 10, 1.0)


class StubAnswer:
    def __init__(self, status, body=b"{}"):
        self.status, self.body, self.closed = status, body, False

    def read(self):
        return self.body

    def json(self):
        return json.loads(self.body)

    def raise_for_error(self):
        pass

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StubServer:
    """An Ollama server that lists its models and answers chat with a status or a failure."""

    def __init__(self, name, models, chat=200):
        self.name, self.models, self.chat = name, models, chat
        self.describe = f"Ollama {name}"
        self.settings = SERVICE
        self.calls = 0

    def open(self, method, path, **request):
        if path in ("/api/tags", "/api/ps"):
            names = self.models if path == "/api/tags" else []
            return StubAnswer(200, json.dumps({"models": [{"name": n} for n in names]}).encode())
        self.calls += 1
        if isinstance(self.chat, Exception):
            raise self.chat
        return StubAnswer(self.chat)


def stub_pool(tmp_path, *stubs, cooldown=30.0, slot_wait=0.2, max_concurrent=None, scheduling=True):
    settings = tuple(OllamaServerSettings(s.name, f"http://{s.name}:1", max_concurrent, (), scheduling=scheduling)
                     for s in stubs[1:])
    pool = OllamaPool(SERVICE, settings, RoutingSettings(60.0, 1.0, cooldown, slot_wait), str(tmp_path))
    for server, stub in zip(pool.servers, stubs, strict=True):
        server.backend = stub
    return pool
