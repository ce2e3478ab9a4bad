"""The fake Ollama's ``POST /v1/audio/transcriptions``, as Ollama's TranscriptionMiddleware answers it.

Ollama reads the multipart form (``model``, ``file``, ``response_format``, ``language``,
``prompt``), turns it into a chat showing the model the audio, and answers ``{"text": ...}``,
or the bare text when ``response_format`` is ``text``. Errors are OpenAI's shape. The fake's
text is the model's scripted reply, else one that names how many bytes of audio it heard, so a
test can tell the whole file arrived.
"""

from __future__ import annotations

import time

from werkzeug.wrappers import Request, Response

from tests.fakes.ollama_cloud import json_answer

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def openai_error(status: int, message: str) -> Response:
    """Answer with an error as Ollama's openai.NewError shapes it."""
    return json_answer({"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"),
                                  "param": None, "code": None}}, status)


def transcript(audio: bytes) -> str:
    """Return the text the fake hears in ``audio`` unless the model's reply is scripted."""
    return f"heard {len(audio)} bytes of audio"


class AudioRoutes:
    """The transcription handler, mixed into FakeOllama (which records each request first)."""

    def _transcribe(self, request: Request, recorded) -> Response:
        """Answer /v1/audio/transcriptions from the form, as a chat on the model would."""
        try:
            return self._transcription(request, recorded)
        finally:
            request.close()  # the form's files, spooled to temporary files

    def _transcription(self, request: Request, recorded) -> Response:
        if request.mimetype != "multipart/form-data":
            return openai_error(400, "failed to parse multipart form: request Content-Type isn't multipart/form-data")
        model = request.form.get("model", "")
        if not model:
            return openai_error(400, "model is required")
        upload = request.files.get("file")
        if upload is None:
            return openai_error(400, "file is required: http: no such file")
        audio = upload.read()
        if not audio:
            return openai_error(400, "audio file is empty")
        name = self._find(model)
        if name is None:
            return openai_error(404, f'model "{model}" not found, try pulling it first')
        behavior = self._behavior_of(name)
        if behavior.status is not None:
            return openai_error(behavior.status, behavior.error)
        text = (behavior.reply if behavior.reply is not None else transcript(audio)).strip()
        # The chat Ollama makes of it runs as any other: in one of the model's slots, a token a chunk_delay.
        lease = self._admit(request, recorded, name, {}, behavior)

        def answer() -> Response:
            time.sleep(behavior.chunk_delay * len(text.split()))
            if request.form.get("response_format") == "text":
                return Response(text, content_type="text/plain")
            return json_answer({"text": text})
        return lease.hold(answer)
