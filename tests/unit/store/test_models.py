from __future__ import annotations

import pytest

from ollama_proxy.store import Missing, StoreError
from tests.actors import TESTER


def test_aliases(store):
    assert store.list_aliases() == {}
    store.set_alias("gpt-4o", "llama3.2:latest", by=TESTER)
    store.set_alias("fast", "qwen3:0.6b", by=TESTER)
    store.set_alias("gpt-4o", "qwen3:8b", by=TESTER)  # replaces
    assert store.list_aliases() == {"fast": "qwen3:0.6b", "gpt-4o": "qwen3:8b"}
    store.delete_alias("fast", by=TESTER)
    assert store.list_aliases() == {"gpt-4o": "qwen3:8b"}
    with pytest.raises(Missing):
        store.delete_alias("fast", by=TESTER)
    with pytest.raises(StoreError):
        store.set_alias("", "x", by=TESTER)


def test_overrides(store):
    store.set_override("qwen3:8b", {"num_ctx": 32768, "think": True}, {"num_predict": 4096}, by=TESTER)
    store.set_override("llama3.2", enforce={"temperature": 0.2}, by=TESTER)
    assert store.list_overrides() == {
        "llama3.2": {"defaults": {}, "enforce": {"temperature": 0.2}},
        "qwen3:8b": {"defaults": {"num_ctx": 32768, "think": True}, "enforce": {"num_predict": 4096}},
    }
    store.set_override("llama3.2", defaults={"keep_alive": "1h"}, by=TESTER)
    assert store.list_overrides()["llama3.2"] == {"defaults": {"keep_alive": "1h"}, "enforce": {}}
    store.delete_override("llama3.2", by=TESTER)
    assert list(store.list_overrides()) == ["qwen3:8b"]
    with pytest.raises(Missing):
        store.delete_override("llama3.2", by=TESTER)
    with pytest.raises(StoreError, match="defaults"):
        store.set_override("m", defaults=["num_ctx"], by=TESTER)
