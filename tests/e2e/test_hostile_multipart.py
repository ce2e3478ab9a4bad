"""Forms built to make the proxy check one model while Ollama runs another, through the real server.

A key may use ``llama3*`` only. Each form below, sent straight to the fake Ollama (which reads
forms with real Go, as Ollama does), would run ``secret-70b``; or it is one Go reads one way
and a later Go or another reader reads another. Through the proxy none of them runs a model
the key may not use: the proxy reads the form as Go does and refuses what could be read two
ways, and what it forwards is re-encoded, so that the fake, reading as Go, runs the model the
proxy checked.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.command import create_key
from tests.e2e.conftest import auth, base_config
from tests.e2e.server import ProxyServer
from tests.go_reader import models_run as transcription_models
from tests.go_reader import read_as_go

TRANSCRIBE = "/v1/audio/transcriptions"
BOUNDARY = "hostile-b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
AUDIO = b"RIFF" + bytes(range(256)) * 16
SECRET_TEXT = "the secret model ran"
TIMEOUT = 10


def part(headers: str, content: bytes | str) -> bytes:
    content = content.encode() if isinstance(content, str) else content
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


FILE = part('Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav', AUDIO)
END = f"--{BOUNDARY}--\r\n".encode()
ALLOWED = part('Content-Disposition: form-data; name="model"', "llama3.2")
SECRET = part('Content-Disposition: form-data; name="model"', "secret-70b")

# (id, URL query, body, the model a direct request to Ollama runs, the proxy's status)
DECOYS = [
    ("a filename decoy before the model", "",
     part('Content-Disposition: form-data; name="model"; filename="x"', "llama3.2") + SECRET + FILE + END,
     "secret-70b", 400),
    ("name* names the part model", "",
     part("Content-Disposition: form-data; name=\"prompt\"; name*=UTF-8''model", "secret-70b") + FILE + END,
     "secret-70b", 403),
    ("name* first, the allowed model after", "",
     part("Content-Disposition: form-data; name*=utf-8''mo%64el", "secret-70b") + ALLOWED + FILE + END,
     "secret-70b", 400),
    ("a folded header line", "",
     part('Content-Disposition: form-data;\r\n name="model"', "secret-70b") + ALLOWED + FILE + END,
     "secret-70b", 400),
    ("duplicate parameters (Go 1.19 skips the part, later Go reads it)", "",
     part('Content-Disposition: form-data; name="model"; name="model"', "secret-70b") + ALLOWED + FILE + END,
     "llama3.2", 400),
    ("the URL query's model", "model=secret-70b", ALLOWED + FILE + END, "secret-70b", 400),
    ("the URL query's model alone", "model=secret-70b", FILE + END, "secret-70b", 403),
    ("a quoted-printable model", "",
     part('Content-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: quoted-printable',
          "secret=2D70b") + FILE + END, "secret-70b", 400),
    ("an escaped quote hides a name", "",
     part('Content-Disposition: form-data; filename="x\\"; name=model"', "llama3.2") + SECRET + FILE + END,
     "secret-70b", 400),
]


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    started = ProxyServer(base_config(fake_server.url), tmp_path_factory.mktemp("hostile-multipart")).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def llama_key(server) -> str:
    return create_key(server, "--name", "llama-only", "--models", "llama3*")


@pytest.fixture
def ollama(fake):
    """The fake Ollama with the secret model installed, answering a text of its own."""
    fake.set_models("llama3.2", "secret-70b")
    fake.script("secret-70b", reply=SECRET_TEXT)
    return fake


def send(url: str, query: str, body: bytes, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": CONTENT_TYPE, **(auth(token) if token else {})}
    return requests.post(url + TRANSCRIBE + (f"?{query}" if query else ""), data=body, headers=headers,
                         timeout=TIMEOUT)


def models_run(fake) -> list[str]:
    """Return the model each transcription the fake answered asked for, read as Go reads it."""
    return transcription_models(fake.calls(TRANSCRIBE))


@pytest.mark.parametrize("query, body, direct, status", [d[1:] for d in DECOYS], ids=[d[0] for d in DECOYS])
def test_a_decoy_form_never_runs_a_model_the_key_may_not_use(server, llama_key, ollama, query, body, direct, status):
    straight = send(ollama.url, query, body)
    assert models_run(ollama) == [direct]
    assert (straight.status_code, straight.json()["text"] == SECRET_TEXT) == (200, direct == "secret-70b")
    ollama.requests.clear()

    answer = send(server.url, query, body, llama_key)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] and error["message"]
    assert models_run(ollama) == []


@pytest.mark.parametrize("query, body", [
    ("", ALLOWED + FILE + END),
    ("", FILE + ALLOWED + END),
    ("model=llama3.2", FILE + END),
    ("language=en", part("Content-Disposition: form-data; name=\"prompt\"; name*=UTF-8''model", "llama3.2")
     + FILE + END),
], ids=["model first", "file first", "model in the URL query", "model named by name*"])
def test_a_plain_form_still_transcribes(server, llama_key, ollama, query, body):
    answer = send(server.url, query, body, llama_key)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": f"heard {len(AUDIO)} bytes of audio"}
    assert models_run(ollama) == ["llama3.2"]
    sent = ollama.last(TRANSCRIBE)
    assert sent.query == "" and sent.body.count(AUDIO) == 1
    if query == "language=en":
        assert read_as_go(sent.headers["content-type"], sent.body)["language"] == b"en"
