"""Model access, aliases and overrides with a managed key, through every surface and real clients."""

from __future__ import annotations

import json
import time

import anthropic
import ollama
import openai
import pytest
import requests

from tests.actors import TESTER
from tests.e2e.conftest import GENERATE, auth, base_config
from tests.e2e.server import ProxyServer

CACHE_SECONDS = 0.5
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["store"] = {"cache_seconds": CACHE_SECONDS}
    config["models"] = {
        "aliases": {"gpt-4o": "llama3.2:latest", "claude-sonnet-4": "qwen3:8b"},
        "overrides": {"llama3.2": {"defaults": {"num_ctx": 32768, "keep_alive": "1h"},
                                   "enforce": {"num_predict": 64}},
                      "llava": {"enforce": {"timeout": 1}}},
    }
    started = ProxyServer(config, tmp_path_factory.mktemp("models")).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def store(server):
    opened = server.open_store()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def llama_key(store) -> str:
    """A key that may use llama3 models only (and so the alias gpt-4o, which names one)."""
    return store.create_key("llama-only", models=["llama3*"], by=TESTER)[1]


def names(listing: dict) -> list[str]:
    return sorted(m["name"] for m in listing["models"])


def test_native_listings_show_only_what_the_key_may_use(server, fake, llama_key):
    for model in ("llama3.2", "qwen3:8b"):  # load both: /api/ps lists loaded models
        requests.post(server.url + "/api/generate", json={"model": model, "prompt": "x", "stream": False},
                      headers=auth(GENERATE)).raise_for_status()
    tags = requests.get(server.url + "/api/tags", headers=auth(llama_key)).json()
    assert names(tags) == ["gpt-4o", "llama3.2:latest"]
    assert "qwen3:8b" in names(requests.get(server.url + "/api/tags", headers=auth(GENERATE)).json())
    ps = requests.get(server.url + "/api/ps", headers=auth(llama_key)).json()
    assert "qwen3:8b" not in names(ps) and "llama3.2:latest" in names(ps)


def test_native_calls_of_a_hidden_model(server, fake, llama_key):
    with ollama.Client(host=server.url, headers=auth(llama_key)) as client:
        with pytest.raises(ollama.ResponseError) as hidden:
            client.show("qwen3:8b")
        assert hidden.value.status_code == 404
        assert client.show("llama3.2").modelfile is not None
        for call in (lambda: client.chat("qwen3:8b", messages=HI), lambda: client.generate("qwen3:8b", "x"),
                     lambda: client.embed("all-minilm", "x")):
            with pytest.raises(ollama.ResponseError) as refused:
                call()
            assert refused.value.status_code == 403 and "may not use" in refused.value.error
        assert client.chat("llama3.2", messages=HI).message.content == "You said: hi"


def test_openai_surface(server, fake, llama_key):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=llama_key, max_retries=0) as client:
        assert sorted(m.id for m in client.models.list()) == ["gpt-4o", "llama3.2:latest"]
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("qwen3:8b")
        assert client.models.retrieve("gpt-4o").id == "gpt-4o"
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="qwen3:8b", messages=HI)
        with pytest.raises(openai.PermissionDeniedError):
            client.completions.create(model="qwen3:8b", prompt="x")
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.embeddings.create(model="all-minilm", input="x")
        assert refused.value.body["type"] == "permission_error"
        with pytest.raises(openai.PermissionDeniedError):
            client.responses.create(model="qwen3:8b", input="hi")
        assert client.chat.completions.create(model="llama3.2", messages=HI).choices[0].message.content == \
            "You said: hi"
        assert client.responses.create(model="llama3.2", input="hi").output_text == "You said: hi"


def test_anthropic_surface(server, fake, llama_key):
    with anthropic.Anthropic(base_url=server.url, api_key=llama_key, max_retries=0) as client:
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            client.messages.create(model="claude-sonnet-4", max_tokens=10, messages=HI)
        assert refused.value.body["error"]["type"] == "permission_error"
        answer = client.messages.create(model="gpt-4o", max_tokens=10, messages=HI)
    assert answer.model == "gpt-4o" and answer.content[0].text == "You said: hi"


def test_an_alias_reaches_its_model_and_answers_under_its_own_name(server, fake):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        answer = client.chat.completions.create(model="gpt-4o", messages=HI)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert answer.model == "gpt-4o" and {c.model for c in chunks} == {"gpt-4o"}
    assert fake.last("/api/chat").json["model"] == "llama3.2:latest"


def test_a_model_spelt_otherwise_is_the_same_model_to_an_alias_an_override_access_and_lookup(server, fake,
                                                                                              llama_key):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=llama_key, max_retries=0) as client:
        assert client.models.retrieve("Llama3.2").id == "llama3.2:latest"
        assert client.models.retrieve("gpt-4o:latest").id == "gpt-4o"
        answer = client.chat.completions.create(model="GPT-4o", messages=HI, max_tokens=1000)
        assert answer.model == "GPT-4o"
        sent = fake.last("/api/chat").json
        assert sent["model"] == "llama3.2:latest" and sent["options"]["num_predict"] == 64
        client.chat.completions.create(model="LLAMA3.2:Latest", messages=HI, max_tokens=1000)
        assert fake.last("/api/chat").json["options"]["num_predict"] == 64  # the override of llama3.2


def test_native_answers_carry_the_alias_line_by_line(server, fake):
    with ollama.Client(host=server.url, headers=auth(GENERATE)) as client:
        parts = list(client.chat("gpt-4o", messages=HI, stream=True))
        assert len(parts) > 1 and {p.model for p in parts} == {"gpt-4o"}
        assert "".join(p.message.content for p in parts) == "You said: hi"
        assert client.generate("gpt-4o", "hi").model == "gpt-4o"
        assert fake.last("/api/generate").json["model"] == "llama3.2:latest"
        assert client.chat("qwen3:8b", messages=HI).model == "qwen3:8b"


def test_an_alias_stored_at_run_time_shows_within_the_bound(server, fake, store):
    store.set_alias("house-model", "qwen3:8b", by=TESTER)
    try:
        time.sleep(CACHE_SECONDS + 0.2)
        tags = requests.get(server.url + "/api/tags", headers=auth(GENERATE)).json()
        assert "house-model" in names(tags)
        answer = requests.post(server.url + "/api/chat", headers=auth(GENERATE),
                               json={"model": "house-model", "messages": HI, "stream": False}).json()
        assert answer["model"] == "house-model" and fake.last("/api/chat").json["model"] == "qwen3:8b"
    finally:
        store.delete_alias("house-model", by=TESTER)


@pytest.mark.parametrize("surface", ["openai", "anthropic", "native"])
def test_overrides_reach_ollama_from_every_surface(server, fake, surface):
    if surface == "openai":
        with openai.OpenAI(base_url=server.url + "/v1", api_key=GENERATE, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=1000)
    elif surface == "anthropic":
        with anthropic.Anthropic(base_url=server.url, api_key=GENERATE, max_retries=0) as client:
            client.messages.create(model="llama3.2", max_tokens=1000, messages=HI)
    else:
        with ollama.Client(host=server.url, headers=auth(GENERATE)) as client:
            client.chat("llama3.2", messages=HI, options={"num_predict": 1000, "num_ctx": 2048}, keep_alive=0)
    sent = fake.last("/api/chat").json
    assert sent["options"]["num_predict"] == 64  # enforced
    assert sent["options"]["num_ctx"] == (2048 if surface == "native" else 32768)  # the request wins a default
    assert sent["keep_alive"] == (0 if surface == "native" else "1h")


def test_a_native_body_without_overrides_goes_on_byte_for_byte(server, fake):
    raw = b'{"model": "qwen3:8b",  "messages": [{"role": "user", "content": "hi"}], "stream": false, "x": 1}'
    answer = requests.post(server.url + "/api/chat", data=raw, headers=auth(GENERATE))
    assert answer.status_code == 200
    assert fake.last("/api/chat").body == raw
    assert json.loads(answer.content)["model"] == "qwen3:8b"


def test_a_model_s_own_timeout_cuts_a_slow_answer(server, fake):
    fake.script("llava", first_byte_delay=3)
    started = time.monotonic()
    answer = requests.post(server.url + "/api/chat", headers=auth(GENERATE),
                           json={"model": "llava", "messages": HI, "stream": False})
    assert answer.status_code == 504 and time.monotonic() - started < 2.5
    assert answer.json()["error"].endswith("did not answer within 1s (models.overrides.llava.enforce.timeout)")
    fake.script("qwen3:8b", first_byte_delay=1.5)  # no override: service.read_timeout (30 s) holds
    assert requests.post(server.url + "/api/chat", headers=auth(GENERATE),
                         json={"model": "qwen3:8b", "messages": HI, "stream": False}).status_code == 200
