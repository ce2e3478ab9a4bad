"""Translate OpenAI (legacy) text completions to and from Ollama ``/api/generate``.

| field | becomes |
|---|---|
| ``prompt`` (a string, or a list of one) | ``prompt``; several prompts or token arrays are refused (400) |
| ``suffix`` | ``suffix``, the same name in both |
| ``max_tokens`` and the sampling fields | ``options``, as for chat (``openai_common.sampling_options``) |
| ``logprobs`` (an int: how many alternatives) | ``logprobs: true`` and ``top_logprobs`` |
| ``echo`` | read by the gateway: the answer starts with the prompt |
| ``stream``, ``stream_options``, ``n`` | as for chat |

``echo`` is done by the gateway because Ollama cannot repeat the prompt: the
translated response starts with ``echo_prefix`` (pass the prompt when ``echo``
is true); prompt tokens get no logprobs. Thinking output has no place in a text
completion and is dropped.
"""

from __future__ import annotations

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_common import (
    OPTION_FIELDS,
    StreamLifecycle,
    finish_reason,
    passthrough,
    sampling_options,
    stream_flag,
    to_openai_usage,
    usage_frame,
)

_MAPPED = frozenset({"prompt", "stream", "logprobs", "echo", *OPTION_FIELDS})

_OBJECT = "text_completion"


def from_openai_completion(body: dict) -> dict:
    """Translate an OpenAI completions request into an Ollama /api/generate body."""
    ollama = passthrough(body, _MAPPED)
    ollama["prompt"] = _prompt(body.get("prompt"))
    options = sampling_options(body)
    if options:
        ollama["options"] = options
    ollama.update(_logprobs(body.get("logprobs")))
    # Always sent: Ollama streams by default, OpenAI does not.
    ollama["stream"] = stream_flag(body)
    return ollama


def _prompt(prompt: object) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(item, str) for item in prompt):
        raise InvalidRequest("prompt must be a single string: Ollama generates from one prompt per request, "
                             "so send one request per prompt", param="prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(item, (int, list)) for item in prompt):
        raise InvalidRequest("token arrays are not supported: Ollama takes the prompt as text", param="prompt")
    # Ollama given no prompt loads the model and generates nothing.
    raise InvalidRequest("prompt must be a string or a list of one string", param="prompt")


def _logprobs(logprobs: object) -> dict:
    if logprobs is None or logprobs is False:
        return {}
    if logprobs is True:  # not OpenAI's shape, but its meaning is plain
        return {"logprobs": True}
    if isinstance(logprobs, int) and logprobs >= 0:
        return {"logprobs": True, "top_logprobs": logprobs}
    raise InvalidRequest("logprobs must be an integer of at least 0", param="logprobs")


def to_openai_completion(ollama_resp: dict, *, completion_id: str, created: int, model: str,
                         choice_index: int = 0, echo_prefix: str = "") -> dict:
    """Translate a non-streamed Ollama generate response into an OpenAI text_completion."""
    choice = {
        "index": choice_index,
        "text": echo_prefix + (ollama_resp.get("response") or ""),
        "logprobs": to_legacy_logprobs(ollama_resp.get("logprobs"), len(echo_prefix)),
        "finish_reason": finish_reason(ollama_resp.get("done_reason")),
    }
    return {"id": completion_id, "object": _OBJECT, "created": created, "model": model,
            "choices": [choice], "usage": to_openai_usage(ollama_resp)}


def to_legacy_logprobs(entries: list[dict] | None, offset: int = 0) -> dict | None:
    """Translate Ollama's logprobs into the completions API's parallel lists.

    ``offset`` is where the first token starts in the choice's text.
    """
    if not entries:
        return None
    tokens = [entry.get("token", "") for entry in entries]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [entry.get("logprob") for entry in entries],
        "top_logprobs": [{top.get("token", ""): top.get("logprob") for top in entry.get("top_logprobs") or []}
                         for entry in entries],
        "text_offset": offsets,
    }


class CompletionStreamConverter(StreamLifecycle):
    """Turn Ollama /api/generate stream chunks into OpenAI text_completion chunks.

    Used like ``ChatStreamConverter``: ``process`` each chunk, ``close`` at
    the end of the upstream, ``fail`` when the gateway gives up.
    """

    object_name = _OBJECT

    def __init__(self, completion_id: str, created: int, model: str, *, include_usage: bool = False,
                 choice_index: int = 0, echo_prefix: str = ""):
        super().__init__()
        self.completion_id = completion_id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.choice_index = choice_index
        self.echo_prefix = echo_prefix
        self._offset = len(echo_prefix)

    def _content(self, ollama_chunk: dict) -> list[dict]:
        text = ollama_chunk.get("response") or ""
        if not text:
            return []
        frames = [] if self._started else self._start()
        logprobs = to_legacy_logprobs(ollama_chunk.get("logprobs"), self._offset)
        self._offset += len(text)
        return frames + [self._frame(text, logprobs=logprobs)]

    def _start_frames(self) -> list[dict]:
        return [self._frame(self.echo_prefix)] if self.echo_prefix else []

    def _finish(self, done_chunk: dict) -> list[dict]:
        self.finished = True
        self.usage = to_openai_usage(done_chunk)
        frames = [self._frame("", reason=finish_reason(done_chunk.get("done_reason")))]
        if self.include_usage:
            frames.append(usage_frame(self.completion_id, self.created, self.model, self.usage, _OBJECT))
        return frames

    def _frame(self, text: str, *, reason: str | None = None, logprobs: dict | None = None) -> dict:
        frame = {"id": self.completion_id, "object": _OBJECT, "created": self.created, "model": self.model,
                 "choices": [{"index": self.choice_index, "text": text, "logprobs": logprobs,
                              "finish_reason": reason}]}
        if self.include_usage:
            frame["usage"] = None  # OpenAI's convention: null on every chunk but the last
        return frame
