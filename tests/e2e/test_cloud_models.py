"""Cloud models through the real server: each surface refuses them to a caller without the cloud permission.

A cloud model (``gpt-oss:120b-cloud``) sends the prompt to ollama.com under the Ollama server's
account, so a token needs ``cloud: true`` and a managed key ``--allow cloud``; an alias of one
needs it too. The fake Ollama lists a cloud model beside local ones.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.command import create_key
from tests.e2e.conftest import GENERATE, MANAGE, auth, base_config
from tests.e2e.server import ProxyServer
from tests.e2e.surfaces import assert_error_shape

TIMEOUT = 10
CLOUD = "gpt-oss:120b-cloud"
ALIAS = "frontier"  # an alias of CLOUD
LAB = "lab-token-0123456789"  # a file token allowed cloud models
HI = [{"role": "user", "content": "hi"}]
AUDIO = b"RIFF" + bytes(range(256)) * 4


def _form(model: str) -> tuple[bytes, str]:
    boundary = "cl0ud"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode() + AUDIO + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# (path, error dialect, body naming a model) of every surface that runs a model
SURFACES = [
    ("/api/chat", "ollama", lambda m: {"model": m, "messages": HI, "stream": False}),
    ("/api/generate", "ollama", lambda m: {"model": m, "prompt": "hi", "stream": False}),
    ("/api/embed", "ollama", lambda m: {"model": m, "input": "hi"}),
    ("/api/embeddings", "ollama", lambda m: {"model": m, "prompt": "hi"}),
    ("/v1/chat/completions", "openai", lambda m: {"model": m, "messages": HI}),
    ("/v1/completions", "openai", lambda m: {"model": m, "prompt": "hi"}),
    ("/v1/embeddings", "openai", lambda m: {"model": m, "input": "hi"}),
    ("/v1/responses", "openai", lambda m: {"model": m, "input": "hi"}),
    ("/v1/messages", "anthropic", lambda m: {"model": m, "max_tokens": 16, "messages": HI}),
    ("/anthropic/v1/messages", "anthropic", lambda m: {"model": m, "max_tokens": 16, "messages": HI}),
    ("/v1/messages/count_tokens", "anthropic", lambda m: {"model": m, "messages": HI}),
    ("/v1/audio/transcriptions", "openai", _form),
]
IDS = [path for path, _, _ in SURFACES]


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["auth"]["generate_tokens"].append({"name": "lab", "token": LAB, "cloud": True})
    config["models"] = {"aliases": {ALIAS: CLOUD}}
    started = ProxyServer(config, tmp_path_factory.mktemp("cloud")).start()
    started.local_key = create_key(started, "--name", "local-key")
    started.cloud_key = create_key(started, "--name", "cloud-key", "--allow", "cloud")
    started.manage_key = create_key(started, "--name", "manage-key", "--scope", "manage")
    yield started
    started.stop()


@pytest.fixture
def listed(fake):
    fake.set_models("llama3.2", "all-minilm", CLOUD)
    return fake


def _send(server: ProxyServer, path: str, body, token: str) -> requests.Response:
    if isinstance(body, tuple):  # a form: its bytes and their Content-Type
        data, content_type = body
        return requests.post(server.url + path, data=data, headers={**auth(token), "Content-Type": content_type},
                             timeout=TIMEOUT)
    return requests.post(server.url + path, json=body, headers=auth(token), timeout=TIMEOUT)


def _asked_for(fake, model: bytes) -> list[str]:
    return [r.path for r in fake.requests if model in r.body]


@pytest.mark.parametrize("path, dialect, body", SURFACES, ids=IDS)
@pytest.mark.parametrize("model", [CLOUD, ALIAS, "Gpt-OSS:120B-Cloud"])
@pytest.mark.parametrize("who", ["file token", "managed key"])
def test_a_cloud_model_is_refused_without_the_permission(server, listed, path, dialect, body, model, who):
    token = GENERATE if who == "file token" else server.local_key
    answer = _send(server, path, body(model), token)
    assert answer.status_code == 403, answer.text
    message = assert_error_shape(dialect, answer)
    assert "may not use the cloud model" in message and model in message and "cloud permission" in message
    assert "ollama.com" in message
    assert _asked_for(listed, b"cloud") == []  # Ollama was not asked


@pytest.mark.parametrize("path, dialect, body", SURFACES, ids=IDS)
@pytest.mark.parametrize("model", [CLOUD, ALIAS])
@pytest.mark.parametrize("who", ["file token", "managed key"])
def test_a_caller_with_the_permission_gets_through(server, listed, path, dialect, body, model, who):
    token = LAB if who == "file token" else server.cloud_key
    answer = _send(server, path, body(model), token)
    assert answer.status_code != 403, answer.text
    if path != "/v1/messages/count_tokens":  # counted here, if Ollama is not needed for it
        assert _asked_for(listed, CLOUD.encode()), f"{answer.status_code}: {answer.text[:300]}"


@pytest.mark.parametrize("token, shown", [(GENERATE, False), (LAB, True)], ids=["without", "with"])
def test_listings_show_cloud_models_only_to_callers_allowed_them(server, listed, token, shown):
    tags = {m["name"] for m in requests.get(server.url + "/api/tags", headers=auth(token), timeout=TIMEOUT)
            .json()["models"]}
    ids = {m["id"] for m in requests.get(server.url + "/v1/models", headers=auth(token), timeout=TIMEOUT)
           .json()["data"]}
    assert {"llama3.2:latest", "all-minilm:latest"} <= tags and "llama3.2:latest" in ids
    assert ({CLOUD, ALIAS} <= tags, {CLOUD, ALIAS} <= ids) == (shown, shown)
    assert bool({CLOUD, ALIAS} & (tags | ids)) is shown  # neither the model nor its alias, or both
    show = requests.post(server.url + "/api/show", json={"model": CLOUD}, headers=auth(token), timeout=TIMEOUT)
    assert show.status_code == (200 if shown else 404), show.text
    one = requests.get(f"{server.url}/v1/models/{CLOUD}", headers=auth(token), timeout=TIMEOUT)
    assert one.status_code == (200 if shown else 404), one.text


# (path, body) of every management request whose source is a model, copied to a local one
COPIES = [
    ("/api/copy", lambda m: {"source": m, "destination": "my-copy"}),
    ("/api/create", lambda m: {"model": "my-copy", "from": m, "stream": False}),
]


@pytest.mark.parametrize("path, body", COPIES, ids=[path for path, _ in COPIES])
@pytest.mark.parametrize("model", [CLOUD, "Gpt-OSS:120B-Cloud"])
@pytest.mark.parametrize("who", ["file token", "managed key"])
def test_a_local_copy_of_a_cloud_model_is_refused_without_the_permission(server, listed, path, body, model, who):
    token = MANAGE if who == "file token" else server.manage_key
    answer = requests.post(server.url + path, json=body(model), headers=auth(token), timeout=TIMEOUT)
    assert answer.status_code == 403, answer.text
    message = assert_error_shape("ollama", answer)
    assert "may not use the cloud model" in message and model in message and "cloud permission" in message
    assert _asked_for(listed, b"my-copy") == []  # Ollama was not asked


def test_a_local_copy_of_a_cloud_model_is_a_cloud_model_to_whoever_uses_it(start_proxy, listed):
    # One worker: a copy made through a worker is known to that worker at once, to the others from a listing.
    proxy = start_proxy(base_config(listed.url), workers=1)
    manager = create_key(proxy, "--name", "cloud-manager", "--scope", "manage", "--allow", "cloud")
    local = create_key(proxy, "--name", "local-key")
    local_manager = create_key(proxy, "--name", "local-manager", "--scope", "manage")
    made = [requests.post(proxy.url + "/api/copy", json={"source": CLOUD, "destination": "team-model"},
                          headers=auth(manager), timeout=TIMEOUT),
            requests.post(proxy.url + "/api/create", json={"model": "team-model-2", "from": CLOUD, "stream": False},
                          headers=auth(manager), timeout=TIMEOUT)]
    assert [answer.status_code for answer in made] == [200, 200], [answer.text for answer in made]

    def assert_refused(model: str) -> None:
        for path, dialect, body in SURFACES[:5]:
            before = len(listed.requests)
            answer = _send(proxy, path, body(model), local)
            assert answer.status_code == 403, (path, answer.text)
            message = assert_error_shape(dialect, answer)
            assert f"may not use the cloud model '{model}'" in message and "cloud permission" in message
            assert len(listed.requests) == before  # Ollama was not asked
        copied = requests.post(proxy.url + "/api/copy", json={"source": model, "destination": "again"},
                               headers=auth(local_manager), timeout=TIMEOUT)
        assert copied.status_code == 403 and "may not use the cloud model" in copied.json()["error"], copied.text

    assert_refused("team-model")  # made through the proxy: known at once, before any listing
    assert_refused("team-model-2:latest")
    # Made on the server itself (`ollama cp`): known once a listing has been read through the proxy.
    assert requests.post(listed.url + "/api/copy", json={"source": CLOUD, "destination": "team-model-3"},
                         timeout=TIMEOUT).status_code == 200
    hidden = {m["name"] for m in requests.get(proxy.url + "/api/tags", headers=auth(local), timeout=TIMEOUT)
              .json()["models"]}
    assert "llama3.2:latest" in hidden and not hidden & {
        "team-model:latest", "team-model-2:latest", "team-model-3:latest", CLOUD}
    assert_refused("Team-Model-3")
    shown = {m["name"] for m in requests.get(proxy.url + "/api/tags", headers=auth(manager), timeout=TIMEOUT)
             .json()["models"]}
    assert {"team-model:latest", "team-model-2:latest", "team-model-3:latest", CLOUD} <= shown
    allowed = _send(proxy, "/api/chat", {"model": "team-model", "messages": HI, "stream": False}, manager)
    assert allowed.status_code == 200, allowed.text
