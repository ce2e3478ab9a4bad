"""The fake Ollama's ``POST /v1/audio/transcriptions``, as Ollama's TranscriptionMiddleware answers it.

Ollama reads the multipart form with Go's net/http (``ParseMultipartForm``, then ``FormValue``
for ``model``, ``response_format``, ``language`` and ``prompt``, ``FormFile("file")``), turns it
into a chat showing the model the audio, and answers ``{"text": ...}``, or the bare text when
``response_format`` is ``text``. The fake reads the request with real Go too
(``tests/go_reader.py``), never with the proxy's parser, so the model it runs is the one Ollama
would run, whatever a form tries. Errors are OpenAI's shape. The fake's text is the model's
scripted reply, else one that names how many bytes of audio it heard, so a test can tell the
whole file arrived.
"""

from __future__ import annotations

import time

from werkzeug.wrappers import Request, Response

from tests.fakes.ollama_cloud import json_answer
from tests.go_reader import read_as_go

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def openai_error(status: int, message: str) -> Response:
    """Answer with an error as Ollama's openai.NewError shapes it."""
    return json_answer({"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"),
                                  "param": None, "code": None}}, status)


def transcript(audio_bytes: int) -> str:
    """Return the text the fake hears in that many bytes of audio unless the model's reply is scripted."""
    return f"heard {audio_bytes} bytes of audio"


def read_form(request: Request, body: bytes) -> dict:
    """Read the request as Ollama does: Go's ParseMultipartForm on its Content-Type, body and URL."""
    target = request.environ.get("RAW_URI") or request.full_path
    return read_as_go(request.headers.get("Content-Type"), body, target)


class AudioRoutes:
    """The transcription handler, mixed into FakeOllama (which records each request first)."""

    def _transcribe(self, request: Request, recorded) -> Response:
        """Answer /v1/audio/transcriptions from the form, as a chat on the model would."""
        form = read_form(request, recorded.body)
        if "error" in form:
            return openai_error(400, f"failed to parse multipart form: {form['error']}")
        model = form["model"].decode(errors="replace")
        if not model:
            return openai_error(400, "model is required")
        if form["file"] is None:
            return openai_error(400, "file is required: http: no such file")
        if not form["file"]["size"]:
            return openai_error(400, "audio file is empty")
        name = self._find(model)
        if name is None:
            return openai_error(404, f'model "{model}" not found, try pulling it first')
        behavior = self._behavior_of(name)
        if behavior.status is not None:
            return openai_error(behavior.status, behavior.error)
        text = (behavior.reply if behavior.reply is not None else transcript(form["file"]["size"])).strip()
        # The chat Ollama makes of it runs as any other: in one of the model's slots, a token a chunk_delay.
        lease = self._admit(request, recorded, name, {}, behavior)

        def answer() -> Response:
            time.sleep(behavior.chunk_delay * len(text.split()))
            if form["response_format"] == b"text":
                return Response(text, content_type="text/plain")
            return json_answer({"text": text})
        return lease.hold(answer)
