"""No password of an Ollama server's URL in any answer: error bodies, stream frames, headers, /health.

A server's URL may carry credentials (``http://ops:<password>@gpu1:11434``), and every
failure names the server it happened on, on every surface. Each answer is searched for the
password here: against a server that cannot be reached, and against one that is too slow,
cuts its answer, stalls or sends a line that is not JSON.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import MANAGE, auth, base_config
from tests.e2e.server import ProxyServer, free_port

PASSWORD = "pw-in-the-url-0123456789"
NAMED = "Ollama at http://***@127.0.0.1:"  # how the server is named instead
TIMEOUT = 1.0  # the proxy's read_timeout and stream_idle_timeout
MODEL = "llama3.2:latest"
HELLO = [{"role": "user", "content": "hello"}]
STREAMS = {  # name -> (path, body) of a streamed request that reaches the Ollama server
    "native-chat": ("/api/chat", {"model": "llama3.2", "messages": HELLO}),
    "native-generate": ("/api/generate", {"model": "llama3.2", "prompt": "hello"}),
    "openai-chat": ("/v1/chat/completions", {"model": "llama3.2", "messages": HELLO, "stream": True}),
    "openai-completions": ("/v1/completions", {"model": "llama3.2", "prompt": "hello", "stream": True}),
    "anthropic": ("/v1/messages", {"model": "llama3.2", "max_tokens": 64, "messages": HELLO, "stream": True}),
    "responses": ("/v1/responses", {"model": "llama3.2", "input": "hello", "stream": True}),
}
TRANSLATED_STREAMS = [name for name in STREAMS if not name.startswith("native")]
WHOLE = {  # the same, answered whole, and the embeddings
    **{name: (path, {**body, "stream": False}) for name, (path, body) in STREAMS.items()},
    "native-embed": ("/api/embed", {"model": "llama3.2", "input": "hello"}),
    "openai-embeddings": ("/v1/embeddings", {"model": "llama3.2", "input": "hello"}),
}


def with_password(url: str) -> str:
    return url.replace("://", f"://ops:{PASSWORD}@", 1)


def assert_no_password(answer: requests.Response, text: str | None = None) -> str:
    """Check neither the body (or ``text``, the body as read) nor a header holds the password; return the body."""
    text = answer.text if text is None else text
    assert PASSWORD not in text, text
    for name, value in answer.headers.items():
        assert PASSWORD not in value, f"{name}: {value}"
    return text


def post(server: ProxyServer, path: str, body: dict, token: str = MANAGE) -> requests.Response:
    return requests.post(server.url + path, json=body, headers=auth(token), timeout=30)


def transcribe(server: ProxyServer) -> requests.Response:
    return requests.post(server.url + "/v1/audio/transcriptions", data={"model": "llama3.2"},
                         files={"file": ("hello.wav", bytes(range(256)) * 16)}, headers=auth(), timeout=30)


def read_stream(server: ProxyServer, path: str, body: dict) -> tuple[requests.Response, str]:
    with requests.post(server.url + path, json=body, headers=auth(), stream=True, timeout=30) as answer:
        assert answer.status_code == 200, answer.text
        return answer, b"".join(answer.iter_content(None)).decode()


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory):
    """A proxy whose only Ollama server, its URL with a password, refuses every connection."""
    config = base_config(with_password(f"http://127.0.0.1:{free_port()}"))
    server = ProxyServer(config, tmp_path_factory.mktemp("unreachable"), workers=1).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def impatient(fake_server, tmp_path_factory):
    """A proxy over the fake Ollama, reached by a URL with a password, that waits for it ``TIMEOUT`` at most."""
    config = base_config(with_password(fake_server.url), read_timeout=TIMEOUT, stream_idle_timeout=TIMEOUT)
    server = ProxyServer(config, tmp_path_factory.mktemp("impatient"), workers=1).start()
    yield server
    server.stop()


@pytest.mark.parametrize("name", [*STREAMS, *WHOLE, "native-show", "native-pull"])
def test_a_server_that_cannot_be_reached_is_named_without_its_password(unreachable, name):
    path, body = {**STREAMS, **WHOLE, "native-show": ("/api/show", {"model": "llama3.2"}),
                  "native-pull": ("/api/pull", {"model": "llama3.2"})}[name]
    answer = post(unreachable, path, body)
    assert answer.status_code == 502
    assert NAMED in assert_no_password(answer)


@pytest.mark.parametrize("method, path", [("GET", "/api/tags"), ("GET", "/api/ps"), ("GET", "/v1/models"),
                                          ("GET", "/api/version"), ("POST", "/api/a-route-ollama-adds-later")])
def test_listings_and_forwarded_routes_name_an_unreachable_server_without_its_password(unreachable, method, path):
    answer = requests.request(method, unreachable.url + path, headers=auth(MANAGE), timeout=30)
    assert answer.status_code == 502
    assert NAMED in assert_no_password(answer)


def test_audio_and_health_name_an_unreachable_server_without_its_password(unreachable):
    answer = transcribe(unreachable)
    assert answer.status_code == 502
    assert NAMED in assert_no_password(answer)
    health = requests.get(unreachable.url + "/health", headers=auth(), timeout=30)
    assert health.status_code == 503
    assert NAMED in assert_no_password(health)


@pytest.mark.parametrize("name", [name for name in WHOLE if "embed" not in name])
def test_a_server_too_slow_to_answer_is_named_without_its_password(impatient, fake, name):
    fake.script(MODEL, first_byte_delay=2 * TIMEOUT)
    path, body = WHOLE[name]
    answer = post(impatient, path, body)
    assert answer.status_code == 504
    assert NAMED in assert_no_password(answer)


@pytest.mark.parametrize("name", [name for name in WHOLE if "embed" not in name])
def test_an_answer_cut_short_is_named_without_its_password(impatient, fake, name):
    fake.script(MODEL, reply="a b c d e f", drop_after=2)
    path, body = WHOLE[name]
    answer = post(impatient, path, body)
    assert answer.status_code == 502
    assert NAMED in assert_no_password(answer)


@pytest.mark.parametrize("fault", ["cut", "stalled"])
@pytest.mark.parametrize("name", STREAMS)
def test_a_stream_that_fails_ends_with_a_frame_that_names_the_server_without_its_password(impatient, fake, name,
                                                                                          fault):
    if fault == "cut":
        fake.script(MODEL, reply="a b c d e f", drop_after=2)
    else:
        fake.script(MODEL, reply="a b c d e f", chunk_delay=0.05, stall_after=2, stall_seconds=3 * TIMEOUT)
    answer, text = read_stream(impatient, *STREAMS[name])
    assert NAMED in assert_no_password(answer, text)


@pytest.mark.parametrize("name", TRANSLATED_STREAMS)
def test_a_stream_line_that_is_not_json_is_told_without_the_password(impatient, fake, name):
    fake.script(MODEL, reply="a b c d e f", bad_line_after=2, chunk_delay=0.05)
    answer, text = read_stream(impatient, *STREAMS[name])
    assert NAMED in assert_no_password(answer, text)
