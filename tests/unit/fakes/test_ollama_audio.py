"""The fake Ollama's audio transcriptions, as Ollama's TranscriptionMiddleware answers them."""

import pytest
import requests

pytestmark = pytest.mark.go  # the fake reads the form with Go, as Ollama does (tests/go_reader.py)

AUDIO = b"RIFF\x00\x01WAVEfmt " * 100


def transcribe(fake, files=None, data=None):
    return requests.post(fake.url + "/v1/audio/transcriptions", files=files, data=data, timeout=10)


def test_a_transcription_is_the_text_heard_in_the_whole_file(fake):
    answer = transcribe(fake, files={"file": ("a.wav", AUDIO)}, data={"model": "llama3.2"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"text": f"heard {len(AUDIO)} bytes of audio"}
    assert fake.last("/v1/audio/transcriptions").body.count(AUDIO) == 1


def test_response_format_text_is_the_bare_text(fake):
    fake.script("llama3.2", reply=" Hello there. ")
    answer = transcribe(fake, files={"file": ("a.wav", AUDIO)}, data={"model": "llama3.2", "response_format": "text"})
    assert answer.headers["Content-Type"].startswith("text/plain") and answer.text == "Hello there."


@pytest.mark.parametrize("files, data, status, message", [
    ({"file": ("a.wav", AUDIO)}, {}, 400, "model is required"),
    (None, {"model": "llama3.2"}, 400, "failed to parse multipart form"),  # a urlencoded form
    ({"other": ("a.wav", AUDIO)}, {"model": "llama3.2"}, 400, "file is required"),
    ({"file": ("a.wav", b"")}, {"model": "llama3.2"}, 400, "audio file is empty"),
    ({"file": ("a.wav", AUDIO)}, {"model": "nope"}, 404, 'model "nope" not found, try pulling it first'),
])
def test_errors_are_openai_shaped(fake, files, data, status, message):
    answer = transcribe(fake, files=files, data=data)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert message in error["message"] and error["type"] == {400: "invalid_request_error",
                                                              404: "not_found_error"}[status]


def _form(*parts: tuple[str, bytes]) -> tuple[bytes, dict]:
    body = b"".join(b"--B\r\n" + headers.encode() + b"\r\n\r\n" + content + b"\r\n" for headers, content in parts)
    return body + b"--B--\r\n", {"Content-Type": "multipart/form-data; boundary=B"}


FILE = ('Content-Disposition: form-data; name="file"; filename="a.wav"', AUDIO)


@pytest.mark.parametrize("query, parts", [
    ("", [('Content-Disposition: form-data; name="model"; filename="x"', b"llama3.2"),
          ('Content-Disposition: form-data; name="model"', b"nope"), FILE]),  # a part with a filename is a file
    ("", [("Content-Disposition: form-data; name=\"prompt\"; name*=UTF-8''model", b"nope"), FILE]),
    ("", [('Content-Disposition: form-data;\r\n name="model"', b"nope"), FILE]),  # a folded line
    ("?model=nope", [('Content-Disposition: form-data; name="model"', b"llama3.2"), FILE]),  # the query's first
])
def test_the_form_is_read_as_go_reads_it(fake, query, parts):
    body, headers = _form(*parts)
    answer = requests.post(fake.url + "/v1/audio/transcriptions" + query, data=body, headers=headers, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["message"].startswith('model "nope" not found')


def test_a_form_go_cannot_read_is_a_400(fake):
    body, headers = _form(('Content-Disposition: form-data; name="model"', b"llama3.2"), FILE)
    answer = requests.post(fake.url + "/v1/audio/transcriptions", data=body[:-9], headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]["message"] == \
        "failed to parse multipart form: unexpected EOF"
