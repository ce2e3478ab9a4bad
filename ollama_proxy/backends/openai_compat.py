"""Serve Ollama-shaped requests from an OpenAI-compatible provider (DeepSeek, OpenRouter ...).

``ProviderBackend`` offers what ``OllamaBackend`` offers, so a blueprint does
not care which one routing gave it: Ollama bodies go in, Ollama chunks come
out, translated by ``translate.provider_*``. The provider is always asked
for a stream (a client that leaves stops it; silences are bounded chunk by
chunk) and the stream is folded when a whole answer is wanted.

Failures are mapped here and nowhere else: a connection that fails is
``UpstreamUnavailable`` (502), a timeout ``UpstreamTimeout`` (504), an error
status keeps its status and message (``UpstreamError``), a 429 that outlasts
the retries is ``RateLimited``. Connect failures, 429 and 502/503/504 are
retried with exponential backoff and full jitter (a 429's ``Retry-After`` is
honoured), but only before the answer starts: once a byte has gone to the
client, a failure ends the stream.

What crosses the wire is chosen here too: the headers both ways
(``provider_headers``), and the configured secrets blanked out of everything
the provider says before it reaches a client (``provider_secrets``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NoReturn

import requests

from ollama_proxy.backends.presets import PRESETS
from ollama_proxy.backends.provider_answer import OllamaAnswer, PassthroughAnswer, sse_data
from ollama_proxy.backends.provider_headers import own_headers, retry_after, to_provider
from ollama_proxy.backends.provider_secrets import as_written, blank, blank_bytes, secrets_of, without_userinfo
from ollama_proxy.backends.session import ProcessSession, reason
from ollama_proxy.backends.upstream_response import UpstreamResponse, json_object
from ollama_proxy.errors import (
    InvalidRequest,
    NotFound,
    ProxyError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ollama_proxy.translate.ollama import fold_chunks
from ollama_proxy.translate.provider_answers import show_body, tags_entry, to_ollama_embed, to_ollama_embeddings
from ollama_proxy.translate.provider_fields import to_provider_passthrough
from ollama_proxy.translate.provider_request import to_provider_chat, to_provider_embeddings, to_provider_generate
from ollama_proxy.translate.provider_stream import ProviderStream, completion_as_chunk, created_at, error_message

if TYPE_CHECKING:
    from ollama_proxy.config import ProviderSettings, RetrySettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class _Retryable(Exception):
    """A failure worth another attempt: ``error`` is raised if none is left."""

    def __init__(self, error: ProxyError, wait: float | None = None):
        super().__init__(error.message)
        self.error = error
        self.wait = wait  # the provider's Retry-After, if it said one


class ProviderBackend:
    """One OpenAI-compatible provider, reached through one pooled session per worker."""

    def __init__(self, settings: ProviderSettings, retry: RetrySettings):
        self.name = settings.name
        self.base_url = settings.base_url
        self.settings = settings
        self.retry = retry
        preset = PRESETS.get(settings.preset or "")
        self.thinking_switch = preset.thinking if preset else None
        self._sessions = ProcessSession(settings.pool_size)
        self._models: tuple[float, list[str]] | None = None
        self.listing_ms: float | None = None  # how long its last GET /models took; None: never asked
        self._listed_at = created_at(time.time())
        self._secrets = secrets_of(settings)
        self._secret_bytes = as_written(self._secrets)
        self.describe = f"provider {self.name} at {without_userinfo(self.base_url)}"  # no password in messages
        self.sleep = time.sleep  # replaced in tests
        self.jitter = random.random

    # The Ollama surface

    @staticmethod
    def encode(ollama_body: dict) -> dict:
        """Return the body as it is: ``post_json`` translates it into the provider's protocol."""
        return ollama_body

    def post_json(self, path: str, ollama_body: dict, model_label: str | None = None) -> OllamaAnswer:
        """Answer an Ollama request; return an answer shaped like Ollama's (``OllamaShapedAnswer``)."""
        if path == "/api/show":
            model = ollama_body.get("model") or ollama_body.get("name") or ""
            return OllamaAnswer(iter([self.show(model)]), stream=False, fold=_only)
        label = model_label or ollama_body["model"]
        if path in ("/api/embed", "/api/embeddings"):
            return self._embed(path, ollama_body, label)
        if path not in ("/api/chat", "/api/generate"):
            raise InvalidRequest(f"{path} is not available for provider models")
        generate = path == "/api/generate"
        stream = ollama_body.get("stream") is not False
        if _nothing_to_answer(ollama_body, generate):
            return OllamaAnswer(iter([_loaded(label, generate)]), stream=stream, fold=fold_chunks)
        body = (to_provider_generate if generate else to_provider_chat)(ollama_body, self.thinking_switch)
        started = time.time()
        raw = self._send("POST", "/chat/completions", body)
        converter = ProviderStream(label, started, generate=generate)
        return OllamaAnswer(self._ollama_chunks(raw, converter), stream=stream, fold=fold_chunks, raw=raw,
                            waited=raw.waited)

    def open(self, method: str, path: str, **_) -> NoReturn:
        """Refuse what only an Ollama server does (pull, push, create, copy, delete, blobs)."""
        raise InvalidRequest(f"{method} {path} manages models on an Ollama server; {self.name} is an "
                             "OpenAI-compatible provider, whose models are used, not managed")

    def list_models(self) -> list[str]:
        """Return the provider's model names: the configured ones, or its ``GET /models`` (cached)."""
        if self.settings.models:
            return list(self.settings.models)
        if self._models is None or time.monotonic() - self._models[0] >= self.settings.models_cache_seconds:
            started = time.perf_counter()
            with self._send("GET", "/models") as raw:
                answer = raw.json()
            self.listing_ms = round((time.perf_counter() - started) * 1000, 1)
            names = [item["id"] for item in answer.get("data") or [] if isinstance(item, dict) and "id" in item]
            self._models = (time.monotonic(), names)
        return list(self._models[1])

    def known_models(self) -> list[str] | None:
        """Return the model names known without asking: the configured ones, or the last listing's (None: none)."""
        if self.settings.models:
            return list(self.settings.models)
        return None if self._models is None else list(self._models[1])

    def tags(self) -> dict:
        """Return an Ollama ``/api/tags`` body listing the provider's models."""
        return {"models": [tags_entry(self.name, model, self._listed_at) for model in self.list_models()]}

    def show(self, model: str) -> dict:
        """Return an Ollama ``/api/show`` body for one of the provider's models."""
        if model not in self.list_models():
            raise NotFound(f'model "{self.name}:{model}" not found', code="model_not_found")
        facts = self.settings.model_facts.get(model)
        return show_body(self.name, facts.context_length if facts else None,
                         facts.capabilities if facts else (), self._listed_at)

    def ps(self) -> dict:
        """Return an empty ``/api/ps`` body: a provider has nothing loaded here."""
        return {"models": []}

    # The OpenAI surface, passed through

    def open_openai(self, path: str, body: dict, headers: Iterable[tuple[str, str]] = ()) -> PassthroughAnswer:
        """Send an OpenAI request as it is but for the usage a stream must report; return the open answer.

        The answer's bytes come back as the provider sent them, but for secrets blanked and a usage
        chunk the client did not ask for left out.
        """
        body, usage_wanted = to_provider_passthrough(body)
        raw = self._send("POST", path.removeprefix("/v1"), body, to_provider(headers))
        return PassthroughAnswer(raw, blank=self._blank_bytes, usage_wanted=usage_wanted)

    # Wire

    def _embed(self, path: str, ollama_body: dict, label: str) -> OllamaAnswer:
        started = time.perf_counter()
        with self._send("POST", "/embeddings", to_provider_embeddings(ollama_body)) as raw:
            answer = raw.json()
        seconds = time.perf_counter() - started
        ollama = to_ollama_embed(answer, label, seconds) if path == "/api/embed" else to_ollama_embeddings(answer)
        return OllamaAnswer(iter([ollama]), stream=False, fold=_only, waited=seconds)

    def _ollama_chunks(self, raw: UpstreamResponse, converter: ProviderStream) -> Iterator[dict]:
        """Convert the provider's stream (or whole answer) into Ollama chunks."""
        if raw.headers.get("Content-Type", "").startswith("application/json"):
            yield from converter.process(completion_as_chunk(self._whole_answer(raw)), time.time())
            yield from converter.finish(time.time())
            return
        for data in sse_data(raw.iter_bytes()):
            data = blank(data, self._secrets)  # an error chunk may echo what the provider was sent
            if data == "[DONE]":
                yield from converter.finish(time.time())
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise UpstreamError(f"{self.describe} sent a stream line that is not JSON: {data[:80]!r}") from None
            yield from converter.process(chunk, time.time())
        yield from converter.close(time.time())

    def _whole_answer(self, raw: UpstreamResponse) -> dict:
        """Return a whole JSON answer (a provider that would not stream), secrets blanked."""
        return json_object(self._blank_bytes(raw.read()), self.describe)

    def _send(self, method: str, path: str, body: dict | None = None,
              headers: dict[str, str] | None = None) -> UpstreamResponse:
        """Send with retries before the answer starts; return it open, or raise its error."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {**(headers or {}), **self._own_headers()}
        deadline = time.monotonic() + self.retry.total_timeout
        for attempt in range(1, max(1, self.retry.attempts) + 1):
            try:
                return self._attempt(method, path, data, headers)
            except _Retryable as failure:
                wait = failure.wait if failure.wait is not None else self._backoff(attempt)
                if attempt >= self.retry.attempts or wait > deadline - time.monotonic():
                    raise failure.error from None
                log.warning("%s: %s; attempt %d of %d in %.2fs", self.describe, failure.error.message,
                            attempt + 1, self.retry.attempts, wait)
                self.sleep(wait)
        raise AssertionError("unreachable: the last attempt raises")

    def _attempt(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> UpstreamResponse:
        started = time.perf_counter()
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            response = self._sessions.get().request(method, self.base_url + path, data=data, headers=headers,
                                                    stream=True, timeout=timeout, allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise _Retryable(UpstreamTimeout(f"{self.describe} did not accept a connection within "
                                             f"{timeout[0]:g}s")) from None
        except requests.exceptions.ReadTimeout:
            raise UpstreamTimeout(f"{self.describe} did not answer within {timeout[1]:g}s (the read_timeout of "
                                  f"backend {self.name}, else service.read_timeout)") from None
        except requests.exceptions.ConnectionError as exc:
            raise _Retryable(UpstreamUnavailable(f"cannot reach {self.describe}: {reason(exc)}")) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(f"cannot reach {self.describe}: {reason(exc)}") from None
        upstream = UpstreamResponse(response, self.describe, time.perf_counter() - started,
                                    self.settings.stream_idle_timeout, "stream_idle_timeout")
        if upstream.status >= 400:
            self._raise_status(upstream)
        return upstream

    def _raise_status(self, upstream: UpstreamResponse) -> None:
        """Raise the provider's error with its status and message (retryable ones wrapped), secrets blanked."""
        with upstream:
            body = self._blank_bytes(upstream.read())
        try:
            message = blank(error_message(json.loads(body)), self._secrets)  # a secret JSON wrote otherwise
        except ValueError:
            message = body.decode("utf-8", "replace").strip()[:500] or f"status {upstream.status}"
        message = f"{self.name}: {message}"
        if upstream.status == 429:
            wait = retry_after(upstream.headers.get("Retry-After"))
            raise _Retryable(RateLimited(message, retry_after=wait), wait)
        error = UpstreamError(message, status=upstream.status,
                              code="model_not_found" if upstream.status == 404 else None)
        if upstream.status in RETRY_STATUSES:
            raise _Retryable(error)
        raise error

    def _own_headers(self) -> dict[str, str]:
        settings = self.settings
        return own_headers(settings.api_key, settings.organization, settings.project, settings.headers)

    def _blank_bytes(self, data: bytes) -> bytes:
        return blank_bytes(data, self._secret_bytes)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to the exponential bound, so retries spread out."""
        bound = min(self.retry.max_backoff, self.retry.backoff * 2 ** (attempt - 1))
        return bound * self.jitter()


def _only(answers: list[dict]) -> dict:
    return answers[0]


def _nothing_to_answer(ollama_body: dict, generate: bool) -> bool:
    """Say whether the request only asks to load the model, as an empty prompt does in Ollama."""
    if generate:
        return not ollama_body.get("prompt") and not ollama_body.get("images")
    return not ollama_body.get("messages")


def _loaded(label: str, generate: bool) -> dict:
    """Return Ollama's answer to a load request: done at once (a provider's models are always ready)."""
    head = {"model": label, "created_at": created_at(time.time())}
    body = {"response": ""} if generate else {"message": {"role": "assistant", "content": ""}}
    return {**head, **body, "done": True, "done_reason": "load"}
