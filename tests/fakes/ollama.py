"""A fake Ollama server for end-to-end tests of the gateway.

It speaks Ollama's HTTP API as /work/shared/reference/ollama-api.md documents it, over real
sockets: streams are NDJSON sent with chunked transfer encoding, one JSON object per chunk,
each sent the moment it is produced. Tests script how each model answers (``script``) and
read back what the fake was sent (``requests``) and how each stream ended (``streams``).

By default every request runs at once. Given ``num_parallel``, the fake runs generate, chat and
embed requests in slots as Ollama's scheduler does (see ollama_scheduler.py): each loaded model has
that many slots, at most ``max_loaded_models`` models are loaded, loads take ``load_seconds`` (or a
model's scripted ``load_seconds``), a request with other load options (num_ctx, ...) reloads the
model, and idle models unload after their keep_alive. Headers go out with the first chunk, once the
request holds its slot; a client that hangs up while waiting is dropped, never started. What
happened is in ``fake.scheduler`` (records, stats, runners); a record's ``origin`` is the request as
``requests`` holds it.

With ``prompt_cache`` too, each runner keeps its slots' prompts and a RAM prompt cache, as the
llama-server under Ollama 0.30 and later does (ollama_cache.py): a prompt's tokens are its template's
rendering (see ``_prompt_tokens``), only those its slot did not hold are processed,
``prompt_token_seconds`` each, before the first chunk, by one reader per runner that reads its slots'
prompts lowest slot first, as llama-server batches them (ollama_reading.py). As Ollama 0.30 to 0.33 do,
prompt_eval_count counts every prompt token, cached or not, and nothing says how many came from the
cache: no release sends ``prompt_eval_cached_count`` (api/types.go has no such field; only an unmerged
branch adds it), so only prompt_eval_duration, the reading of the uncached rest, tells.
``reports_cached=True`` sends it too, as cache_n, for an Ollama that someday does.
``fake.cache_slots(model)`` shows what the slots hold; each record says how long its prompt was, how much
of it was cached, and in which slot.

Ollama's newer routes (status, model recommendations, web search and fetch, the ollama.com
account, audio transcriptions) are answered by ollama_cloud.py and ollama_audio.py.

For a manual run: ``python -m tests.fakes.ollama --port 11434 [--chunk-delay 0.02]``.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, abort
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.go_json import as_struct, object_pairs
from tests.fakes.ollama_audio import AudioRoutes
from tests.fakes.ollama_cloud import CloudRoutes
from tests.fakes.ollama_scheduler import DEFAULT_KEEP_ALIVE, DEFAULT_MAX_LOADED_MODELS, DEFAULT_MAX_QUEUE
from tests.fakes.ollama_slots import (
    ClientGone,
    Lease,
    LiveScheduler,
    NoLease,
    QueueFull,
    Unscheduled,
    peer_gone,
    readable_within,
)

LISTEN_BACKLOG = 1024
BLOB_PIECE_SIZE = 64 * 1024
PROMPT_EVAL_NS_PER_WORD = 250_000
KEEP_ALIVE = timedelta(minutes=5)
NOT_JSON_LINE = b"this line is not JSON\n"

_LOCAL_ORIGIN = re.compile(
    r"https?://(localhost|127\.0\.0\.1|0\.0\.0\.0)(:\d+)?"
    r"|(app|file|tauri|vscode-webview|vscode-file)://.*"
)
_ZERO_DURATION = re.compile(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?")
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")
_TOKEN = re.compile(r"\S+\s*|\s+")
_PROMPT_PIECE = re.compile(r"\w+|[^\w\s]")

# family -> (context_length, embedding_length), for /api/show and /api/ps
_FAMILY_SIZES = {"llama": (131072, 3072), "qwen3": (40960, 4096), "bert": (512, 384)}
_TEMPLATE = "{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}"
_PARAMETERS = 'stop                           "<|eot_id|>"'
_LICENSE = "Fake model for tests; no rights granted or needed."
_DEFAULT_CAPABILITIES = {
    "llama3.2:latest": ["completion", "tools"],
    "qwen3:8b": ["completion", "tools", "thinking"],
    "llava:latest": ["completion", "vision"],
    "all-minilm:latest": ["embedding"],
}


@dataclass
class Behavior:
    """How the fake answers for one model; every field is optional."""

    reply: str | None = None  # default: "You said: " + the last user message / the prompt
    thinking: str | None = None  # streamed before the reply when the model thinks
    tool_calls: list[dict] | None = None  # sent only when the request offers tools
    tool_calls_in_done: bool = False  # put them in the done object, not a chunk before it
    reply_to_tool_result: str | None = None  # if set: the reply, without tool calls, when the last message is a tool's
    reply_after_tools: bool = False  # an agent's turn: only the calls, then the reply once a tool result is last
    done_reason: str = "stop"
    chunk_delay: float = 0.0  # seconds between chunks (and between progress objects); per input when embedding in slots
    first_byte_delay: float = 0.0  # seconds before answering at all (model loading)
    # ... a generation's watching its client meanwhile, as Go's server does: one that closes its end, or only its
    # sending half, is answered 499 "request canceled" at once (off: the delay runs out first, as ever)
    cancels_while_loading: bool = False
    drop_after: int | None = None  # after N chunks, cut the connection
    error_after: int | None = None  # after N chunks, send {"error": ...} and end the stream
    error_message: str = "an error was encountered while running the model"
    bad_line_after: int | None = None  # after N chunks, send a line that is not JSON
    stall_after: int | None = None  # after N chunks, send nothing for stall_seconds, then go on
    stall_seconds: float = 0.0
    hold_until_open: int | None = None  # after the first chunk, wait until this many streams are open at once
    hold_seconds: float = 60.0  # ... but no longer than this
    status: int | None = None  # answer at once with this status and {"error": error}
    error: str = "internal error"
    embedding_dims: int = 8
    load_seconds: float | None = None  # in slots: how long loading this model takes (default: the fake's)
    # prompt_eval_count: "words", the words of the messages' contents; "template", the prompt as a
    # tokenizer counts it: a ChatML rendering of every message and tool, words and marks a token each
    prompt_tokens: str = "words"


@dataclass
class Recorded:
    """One request as the fake received it (a blob upload's body is not kept)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # the parsed body, or None
    at: float  # time.monotonic()


@dataclass
class StreamRecord:
    """What became of one NDJSON stream the fake sent."""

    path: str
    model: str | None
    started: float
    chunks_sent: int = 0
    completed: bool = False  # every scripted line went out
    aborted: bool = False  # the client went away before the end
    closed_at: float | None = None


@dataclass
class _Prompt:
    """What a generate or chat request asks the model."""

    text: str  # what the default reply echoes
    words: int
    tools_offered: bool
    after_tool_result: bool = False  # the last message is a tool's result


@dataclass
class _Turn:
    """What the model says in one generate or chat answer, and when the answer began."""

    model: str  # as the request spelled it: Ollama echoes that back
    behavior: Behavior
    parts: list[dict]  # message fields, one streamed chunk each
    final: dict  # message fields of the done object
    prompt_words: int
    eval_count: int
    started: float
    loaded: float
    top_logprobs: int | None = None  # None: the request did not ask for logprobs
    began: float | None = None  # when it got its slot, if it waited for one
    prefill: list[str] | None = None  # with a prompt cache: the prompt's tokens not cached, processed first
    prefill_seconds: float = 0.0  # ... and how long reading them took
    prompt_tokens: int = 0  # ... of how many tokens
    reports_cached: bool = False  # ... and whether the answer tells how many came from the cache (no release does)

    @classmethod
    def plan(cls, model: str, behavior: Behavior, prompt: _Prompt, thinks: bool, started: float,
             top_logprobs: int | None = None, loaded: float | None = None, began: float | None = None,
             prefill: list[str] | None = None, prompt_tokens: int = 0, reports_cached: bool = False) -> _Turn:
        """Work out the chunks of the model's answer to prompt."""
        reply = f"You said: {prompt.text}" if behavior.reply is None else behavior.reply
        calls = behavior.tool_calls if prompt.tools_offered else None
        if prompt.after_tool_result and behavior.reply_to_tool_result is not None:
            reply, calls = behavior.reply_to_tool_result, None
        thinking = (behavior.thinking or "") if thinks else ""
        if behavior.reply_after_tools:
            calls = None if prompt.after_tool_result else calls
            reply = "" if calls else reply
        parts = [{"thinking": token} for token in _tokens(thinking)]
        parts += [{"content": token} for token in _tokens(reply)]
        eval_count = len(parts)
        final = {}
        if calls and behavior.tool_calls_in_done:
            final = {"tool_calls": calls}
        elif calls:
            parts.append({"tool_calls": calls})
        loaded = time.monotonic() if loaded is None else loaded
        return cls(model, behavior, parts, final, prompt.words, eval_count, started, loaded, top_logprobs, began,
                   prefill, prompt_tokens=prompt_tokens, reports_cached=reports_cached)

    def done_fields(self) -> dict:
        """Return the done object's fields after the message: done, done_reason and metrics."""
        load = _ns(self.loaded - self.started)
        waited = 0 if self.began is None else _ns(self.began - self.loaded)  # for a slot: only in the total
        running = _ns(time.monotonic() - (self.loaded if self.began is None else self.began))
        cached = {}
        if self.prefill is None:  # made up from the prompt's length, not waited for
            prompt_count, evaluation = self.prompt_words, running
            prompt_eval = self.prompt_words * PROMPT_EVAL_NS_PER_WORD
        else:  # the uncached tokens, waited for before the first chunk; the count is the whole prompt's
            prompt_count, prompt_eval = self.prompt_tokens, _ns(self.prefill_seconds)
            evaluation = max(running - prompt_eval, 0)
            if self.reports_cached:
                cached = {"prompt_eval_cached_count": self.prompt_tokens - len(self.prefill)}
        return {
            "done": True,
            "done_reason": self.behavior.done_reason,
            "total_duration": load + waited + prompt_eval + evaluation,
            "load_duration": load,
            "prompt_eval_count": prompt_count,
            **cached,
            "prompt_eval_duration": prompt_eval,
            "eval_count": self.eval_count,
            "eval_duration": evaluation,
        }


BODY_KEY = "fake.body"  # the environ's response body, closed by the handler when the client drops


class _Handler(WSGIRequestHandler):
    """Werkzeug's request handler, speaking HTTP/1.1 (chunked streams) without Nagle delays.

    A client that resets its connection mid-answer makes werkzeug skip the body's ``close()``
    (reading what is left on the socket fails first): closed here, so the request's slot is
    freed as Ollama frees it when a request's context is cancelled.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def connection_dropped(self, error: BaseException, environ: dict | None = None) -> None:
        body = (environ or {}).get(BODY_KEY)
        if body is not None and hasattr(body, "close"):
            body.close()


class FakeOllama(CloudRoutes, AudioRoutes):
    """An Ollama server on 127.0.0.1 whose models answer as tests script them."""

    url: str
    models: dict[str, dict]  # name with tag -> its /api/tags entry
    capabilities: dict[str, list[str]]  # name with tag -> capabilities for /api/show
    loaded: set[str]  # names in /api/ps
    requests: list[Recorded]
    streams: list[StreamRecord]
    blobs: dict[str, int]  # digest -> size of uploaded blobs

    def __init__(
        self,
        version: str = "0.12.6",
        *,
        num_parallel: int | None = None,
        max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        load_seconds: float = 0.0,
        keep_alive: float = DEFAULT_KEEP_ALIVE,
        default_num_ctx: int = 4096,
        prompt_cache: bool = False,
        prompt_token_seconds: float = 0.0,
        prompt_cache_tokens: int | None = None,
        reports_cached: bool = False,
    ) -> None:
        """Make a fake; num_parallel (OLLAMA_NUM_PARALLEL) runs requests in slots, None runs them all at once.

        In slots: max_loaded_models, max_queue and keep_alive (seconds) are OLLAMA_MAX_LOADED_MODELS,
        OLLAMA_MAX_QUEUE and OLLAMA_KEEP_ALIVE; load_seconds is how long a (re)load takes;
        default_num_ctx is the context length of a request that names none. prompt_cache keeps each
        runner's slots' prompts and RAM prompt cache (prompt_cache_tokens long; None: no limit, as
        llama-server's 8 GiB is for a small model), and a prompt's uncached tokens take prompt_token_seconds
        each, read after those of the runner's lower slots; reports_cached says the cached ones in
        prompt_eval_cached_count, which no Ollama release up to 0.33 sends (off: as they answer,
        prompt_eval_count alone, every prompt token).
        """
        if prompt_cache and num_parallel is None:
            raise ValueError("prompt_cache needs num_parallel: only runners keep prompt caches")
        self.version = version
        self._slot_settings = None if num_parallel is None else {
            "num_parallel": num_parallel, "max_loaded_models": max_loaded_models, "max_queue": max_queue,
            "load_seconds": load_seconds, "keep_alive": keep_alive, "default_num_ctx": default_num_ctx,
            "prompt_cache": prompt_cache, "prompt_cache_tokens": prompt_cache_tokens,
        }
        self._prompt_cache = prompt_cache
        self._prompt_token_seconds = prompt_token_seconds
        self.reports_cached = reports_cached
        self.url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._open = threading.Condition()
        self._open_streams = 0  # streams begun and not yet closed, across resets
        self._routes = Map(
            [
                Rule("/", endpoint=self._root, methods=["GET"]),
                Rule("/api/version", endpoint=self._version, methods=["GET"]),
                Rule("/api/tags", endpoint=self._tags, methods=["GET"]),
                Rule("/api/ps", endpoint=self._ps, methods=["GET"]),
                Rule("/api/show", endpoint=self._show, methods=["POST"]),
                Rule("/api/generate", endpoint=self._generate, methods=["POST"]),
                Rule("/api/chat", endpoint=self._chat, methods=["POST"]),
                Rule("/api/embed", endpoint=self._embed, methods=["POST"]),
                Rule("/api/embeddings", endpoint=self._embeddings, methods=["POST"]),
                Rule("/api/pull", endpoint=self._pull, methods=["POST"]),
                Rule("/api/push", endpoint=self._push, methods=["POST"]),
                Rule("/api/create", endpoint=self._create, methods=["POST"]),
                Rule("/api/copy", endpoint=self._copy, methods=["POST"]),
                Rule("/api/delete", endpoint=self._delete, methods=["DELETE"]),
                Rule("/api/blobs/<digest>", endpoint=self._head_blob, methods=["HEAD"]),
                Rule("/api/blobs/<digest>", endpoint=self._upload_blob, methods=["POST"]),
                Rule("/api/status", endpoint=self._status, methods=["GET"]),
                Rule("/api/experimental/model-recommendations", endpoint=self._recommendations, methods=["GET"]),
                Rule("/api/experimental/web_search", endpoint=self._web_search, methods=["POST"]),
                Rule("/api/experimental/web_fetch", endpoint=self._web_fetch, methods=["POST"]),
                Rule("/api/me", endpoint=self._me, methods=["POST"]),
                Rule("/api/signout", endpoint=self._signout, methods=["POST"]),
                Rule("/api/user/keys/<encoded_key>", endpoint=self._signout, methods=["DELETE"]),
                Rule("/v1/audio/transcriptions", endpoint=self._transcribe, methods=["POST"]),
            ],
            merge_slashes=False,
        )
        self.reset()

    def start(self, port: int = 0) -> FakeOllama:
        """Serve in a daemon thread on the port (0: any free one) and return self."""
        self._stopping.clear()
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True, request_handler=_Handler)
        self._server.socket.listen(LISTEN_BACKLOG)  # make_server listens with a backlog of 128
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-ollama", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; streams still running skip their remaining delays."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, model: str, **fields: Any) -> None:
        """Make model (tag optional) answer with Behavior(**fields)."""
        self._scripts[_canonical(model).lower()] = Behavior(**fields)

    def reset(self) -> None:
        """Forget recordings, scripts, uploads and loaded models; restore the default models."""
        self.models = _default_models()
        self.capabilities = {name: list(caps) for name, caps in _DEFAULT_CAPABILITIES.items()}
        self.loaded = set()
        self.requests = []
        self.streams = []
        self.left_whole: list[int] = []  # tokens each whole answer whose client left had generated
        self.blobs = {}
        self.reset_cloud()
        self._scripts: dict[str, Behavior] = {}
        self._slots = Unscheduled() if self._slot_settings is None else LiveScheduler(
            self._stopping, **self._slot_settings)

    @property
    def scheduler(self) -> LiveScheduler | None:
        """The scheduler requests run through in slots (None when they all run at once)."""
        return None if isinstance(self._slots, Unscheduled) else self._slots

    def cache_slots(self, model: str) -> list[tuple[int, bool]]:
        """Return, for each cache slot of the model's runner, the tokens it holds and whether it is in use.

        Empty when the model is not loaded or the fake keeps no prompt caches.
        """
        if self.scheduler is None:
            return []
        return self.scheduler.cache_slots(self._find(model) or _canonical(model))

    def set_models(self, *names: str) -> None:
        """List exactly these models (tag optional): known ones keep their entries, others get a generic one."""
        known = _default_models()
        self.models = {name: known.get(name) or _model_entry(name) for name in map(_canonical, names)}
        for name in self.models:
            self.capabilities.setdefault(name, ["completion"])

    def last(self, path: str) -> Recorded:
        """Return the last request recorded for path."""
        for recorded in reversed(self.requests):
            if recorded.path == path:
                return recorded
        raise AssertionError(f"no request to {path} was recorded")

    def calls(self, path: str) -> list[Recorded]:
        """Return the requests received on path, oldest first."""
        return [recorded for recorded in self.requests if recorded.path == path]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Poll predicate until it holds; fail if it does not within timeout seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition still false after {timeout} s")
            time.sleep(0.01)

    # Dispatch

    def _wsgi(self, environ: dict, start_response: Callable) -> Any:
        """Answer one WSGI request."""
        body = environ[BODY_KEY] = self._respond(Request(environ))(environ, start_response)
        return body

    def _respond(self, request: Request) -> Response:
        """Record the request, then answer it as Ollama's router and middleware would."""
        handler, args = self._route(request)
        body = b"" if handler == self._upload_blob else request.get_data()
        recorded = self._record(request, body)
        if not (_allowed_host(request.host) and _allowed_origin(request.headers.get("Origin", ""))):
            return _empty(403)
        try:
            return handler(request, recorded, **args)
        except HTTPException as refusal:
            return refusal.get_response()

    def _route(self, request: Request) -> tuple[Callable[..., Response], dict]:
        """Find the handler for the request's method and path."""
        try:
            return self._routes.bind_to_environ(request.environ).match()
        except NotFound:
            return _page_not_found, {}
        except MethodNotAllowed as refused:
            return _method_not_allowed, {"allowed": refused.valid_methods or []}

    def _record(self, request: Request, body: bytes) -> Recorded:
        """Append the request to self.requests and return its record."""
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=request.query_string.decode(errors="replace"),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            json=_as_request(request.path, _parse_json(body), body),
            at=time.monotonic(),
        )
        self.requests.append(recorded)
        return recorded

    # Endpoints

    def _root(self, request: Request, recorded: Recorded) -> Response:
        """Answer GET and HEAD /."""
        return Response("Ollama is running", content_type="text/plain; charset=utf-8")

    def _version(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/version."""
        return _json({"version": self.version})

    def _tags(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/tags with the installed models."""
        return _json({"models": list(self.models.values())})

    def _ps(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/ps with the loaded models (in slots: the runners, longest left to live first)."""
        if self.scheduler is None:
            return _json({"models": [self._running(name) for name in sorted(self.loaded) if name in self.models]})
        return _json({"models": [self._running(runner.model, expires_in, runner.context_length)
                                 for runner, expires_in in self.scheduler.loaded() if runner.model in self.models]})

    def _show(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/show with a model's details, metadata and capabilities."""
        requested, _ = self._model_of(_object(recorded), or_name=True)
        name = self._installed(requested, f"model '{requested}' not found")
        entry = self.models[name]
        family = entry["details"]["family"]
        context_length, embedding_length = _FAMILY_SIZES.get(family, (4096, 4096))
        return _json(
            {
                "license": _LICENSE,
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\nTEMPLATE """{_TEMPLATE}"""\n',
                "parameters": _PARAMETERS,
                "template": _TEMPLATE,
                "details": entry["details"],
                "model_info": {
                    "general.architecture": family,
                    f"{family}.context_length": context_length,
                    f"{family}.embedding_length": embedding_length,
                },
                "capabilities": self.capabilities.get(name, []),
                "modified_at": entry["modified_at"],
            }
        )

    def _generate(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/generate: complete the prompt, or load or unload the model if there is none."""
        return self._converse(request, recorded, "generate", _generate_object, _prompt_of_generate)

    def _chat(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/chat: reply to the messages, or load or unload the model if there are none."""
        return self._converse(request, recorded, "chat", _chat_object, _prompt_of_chat)

    def _embed(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/embed with one deterministic vector per input text."""
        body = _object(recorded)
        requested, behavior = self._model_of(body)
        name = self._installed(requested, _not_pulled(requested))
        texts = _embed_inputs(body.get("input"))
        self._keep_loaded(name, body)
        lease = self._admit(request, recorded, name, body, behavior, needs_slot=bool(texts))
        if not texts:
            lease.release()
            return _json({"model": requested, "embeddings": []})
        loaded = time.monotonic() if lease.loaded_at is None else lease.loaded_at
        if lease.started_at is not None:
            self._pause(behavior.chunk_delay * len(texts))
        dimensions = body.get("dimensions") or behavior.embedding_dims
        return lease.hold(lambda: _json(
            {
                "model": requested,
                "embeddings": [_embedding(text, dimensions) for text in texts],
                "total_duration": _ns(time.monotonic() - recorded.at),
                "load_duration": _ns(loaded - recorded.at),
                "prompt_eval_count": _count_words(*texts),
            }
        ))

    def _embeddings(self, request: Request, recorded: Recorded) -> Response:
        """Answer the legacy /api/embeddings with one vector for the prompt."""
        body = _object(recorded)
        requested, behavior = self._model_of(body)
        name = self._installed(requested, _not_pulled(requested))
        self._keep_loaded(name, body)
        prompt = body.get("prompt") or ""
        return _json({"embedding": _embedding(prompt, behavior.embedding_dims) if prompt else []})

    def _pull(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/pull with download progress, installing the model."""
        body = _object(recorded)
        requested, behavior = self._model_of(body, or_name=True)
        name = self._find(requested) or _canonical(requested)
        self.models.setdefault(name, _model_entry(name))
        self.capabilities.setdefault(name, ["completion"])
        events = self._spaced(_pull_statuses(name), behavior.chunk_delay)
        return self._answer(request, body, name, behavior, events, _latest)

    def _push(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/push with upload progress."""
        body = _object(recorded)
        requested, behavior = self._model_of(body, or_name=True)
        name = self._installed(requested, f'model "{requested}" not found')
        events = self._spaced(_push_statuses(name), behavior.chunk_delay)
        return self._answer(request, body, name, behavior, events, _latest)

    def _create(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/create: install a model made from another one or from uploaded blobs."""
        body = _object(recorded)
        requested, behavior = self._model_of(body, or_name=True)
        name = _canonical(requested)
        if body.get("from") is not None and not isinstance(body["from"], str):
            abort(_error(400, f"json: cannot unmarshal {_go_kind(body['from'])} into Go struct field "
                              "CreateRequest.from of type string"))
        if body.get("from"):
            statuses = self._create_from_model(name, body["from"], bool(body.get("system")))
        elif body.get("files"):
            statuses = self._create_from_files(name, _create_digests(body["files"]))
        else:
            abort(_error(400, "neither 'from' or 'files' was specified"))
        events = self._spaced([{"status": status} for status in statuses], behavior.chunk_delay)
        return self._answer(request, body, name, behavior, events, _latest)

    def _copy(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/copy: install the source model under a second name."""
        body = _object(recorded)
        source, destination = body.get("source") or "", body.get("destination") or ""
        if not destination:
            abort(_error(400, f'destination "{destination}" is invalid'))
        name = self._installed(source, f'model "{source}" not found')
        copy = _canonical(destination)
        self.models[copy] = {**self.models[name], "name": copy, "model": copy}
        self.capabilities[copy] = list(self.capabilities.get(name, []))
        return _empty(200)

    def _delete(self, request: Request, recorded: Recorded) -> Response:
        """Answer /api/delete: uninstall the model."""
        requested, _ = self._model_of(_object(recorded), or_name=True)
        name = self._installed(requested, f"model '{requested}' not found")
        del self.models[name]
        self.capabilities.pop(name, None)
        self.loaded.discard(name)
        return _empty(200)

    def _head_blob(self, request: Request, recorded: Recorded, digest: str) -> Response:
        """Answer HEAD /api/blobs/<digest>: 200 if that blob was uploaded, else 404."""
        if _blob_key(digest) in self.blobs:
            return _empty(200)
        return _error(404, f'blob "{digest}" not found')

    def _upload_blob(self, request: Request, recorded: Recorded, digest: str) -> Response:
        """Answer POST /api/blobs/<digest>: keep the blob's size if the body matches the digest."""
        key = _blob_key(digest)
        if key in self.blobs:
            return _empty(200)
        actual, size = _digest_of(request.stream)
        if actual != key:
            return _error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[key] = size
        return _empty(201)

    # Models

    def _behavior_of(self, name: str) -> Behavior:
        """How the model answers: as scripted, else the default."""
        return self._scripts.get(_canonical(name).lower(), Behavior())

    def _model_of(self, body: dict, *, or_name: bool = False,
                  sock: socket.socket | None = None) -> tuple[str, Behavior]:
        """Return the requested model name and its behavior, after its scripted delay and status.

        or_name: read the deprecated ``name`` when ``model`` is empty, as Ollama's show, pull,
        push, create and delete handlers do (the ollama JavaScript client sends only ``name``).
        sock: a generation's connection, watched during the delay if its behavior ``cancels_while_loading``.
        """
        requested = body.get("model") or (body.get("name") if or_name else None)
        if not isinstance(requested, str) or not requested:
            abort(_error(400, "model is required"))
        behavior = self._behavior_of(requested)
        if sock is None or not behavior.cancels_while_loading:
            self._pause(behavior.first_byte_delay)
        elif self._peer_leaves_within(sock, behavior.first_byte_delay):
            abort(_error(499, "request canceled"))
        if behavior.status:
            abort(_error(behavior.status, behavior.error))
        return requested, behavior

    def _find(self, requested: str) -> str | None:
        """Return the installed model's name for requested (tag optional, any case), if any."""
        wanted = _canonical(requested).lower()
        return next((name for name in list(self.models) if name.lower() == wanted), None)

    def _installed(self, requested: str, not_found: str) -> str:
        """Return the installed model's name for requested, or refuse with 404 and not_found."""
        name = self._find(requested)
        if name is None:
            abort(_error(404, not_found))
        return name

    def _keep_loaded(self, name: str, body: dict) -> None:
        """Load the model for a request, or unload it when the request's keep_alive is zero."""
        if _is_zero_duration(body.get("keep_alive")):
            self.loaded.discard(name)
        else:
            self.loaded.add(name)

    def _running(self, name: str, expires_in: float | None = None, context_length: int | None = None) -> dict:
        """Return the /api/ps entry of a loaded model (by default: 5 minutes left, the model's whole context)."""
        entry = self.models[name]
        expires = KEEP_ALIVE if expires_in is None else timedelta(seconds=expires_in)
        return {
            "name": name,
            "model": name,
            "size": entry["size"],
            "digest": entry["digest"],
            "details": entry["details"],
            "expires_at": _rfc3339(datetime.now(timezone.utc) + expires),
            "size_vram": entry["size"],
            "context_length": context_length or self._context_length(name),
        }

    def _context_length(self, name: str) -> int:
        """Return the context length the model was trained for."""
        context_length, _ = _FAMILY_SIZES.get(self.models[name]["details"]["family"], (4096, 4096))
        return context_length

    def _admit(self, request: Request, recorded: Recorded, name: str, body: dict, behavior: Behavior,
               needs_slot: bool = True) -> Lease | NoLease:
        """In slots, wait for the model's runner (and a slot if needs_slot); else go on at once."""
        completes = "completion" in self.capabilities.get(name, [])
        try:
            return self._slots.admit(
                name, body, request.environ["werkzeug.socket"], context_limit=self._context_length(name),
                parallel=None if completes else 1,  # Ollama gives embedding models one slot
                load_seconds=behavior.load_seconds, needs_slot=needs_slot, origin=recorded)
        except QueueFull as refusal:
            abort(_error(503, str(refusal)))
        except ClientGone:
            abort(_error(499, "request canceled"))

    def _create_from_model(self, name: str, source: str, has_system: bool) -> list[str]:
        """Install name as a variant of the installed model source; return the statuses."""
        base = self._installed(source, f'model "{source}" not found')
        details = {**self.models[base]["details"], "parent_model": base}
        # A model made from a cloud model still runs where that one does.
        remote = {key: self.models[base][key] for key in ("remote_model", "remote_host") if key in self.models[base]}
        self.models[name] = {**_model_entry(name, self.models[base]["size"], **details), **remote}
        self.capabilities[name] = list(self.capabilities.get(base, []))
        layers = [f"using already created layer {digest}" for digest, _ in _layers(base)]
        system = ["creating system layer"] if has_system else []
        return ["reading model metadata", *system, *layers, "writing manifest", "success"]

    def _create_from_files(self, name: str, digests: list[str]) -> list[str]:
        """Install name as a model built from uploaded blobs; return the statuses."""
        for digest in digests:
            if _blob_key(digest) not in self.blobs:
                abort(_error(400, f'blob "{digest}" not found'))
        self.models[name] = _model_entry(name)
        self.capabilities[name] = ["completion"]
        layers = [f"using existing layer {digest}" for digest in digests]
        return ["parsing GGUF", *layers, "writing manifest", "success"]

    # Generation and streaming

    def _converse(
        self,
        request: Request,
        recorded: Recorded,
        action: str,
        shape: Callable[..., dict],
        prompt_of: Callable[[dict], _Prompt | None],
    ) -> Response:
        """Answer a generate or chat request the way Ollama's handlers do."""
        body = _object(recorded)
        requested, behavior = self._model_of(body, sock=request.environ["werkzeug.socket"])
        name = self._installed(requested, _not_pulled(requested))
        prompt = prompt_of(body)
        if prompt is not None and behavior.prompt_tokens == "template":
            prompt.words = len(_prompt_tokens(body))
        if prompt is None and _is_zero_duration(body.get("keep_alive")):
            self.loaded.discard(name)
            self._slots.unload(name)
            return _json(shape(requested, {}, done=True, done_reason="unload"))
        self._require_capabilities(name, requested, body, action)
        self._keep_loaded(name, body)
        lease = self._admit(request, recorded, name, body, behavior, needs_slot=prompt is not None)
        if prompt is None:
            lease.release()
            return _json(shape(requested, {}, done=True, done_reason="load"))
        top_logprobs = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
        prompt_tokens, prefill = self._prefill(lease, body)
        turn = _Turn.plan(requested, behavior, prompt, self._thinks(name, body), recorded.at, top_logprobs,
                          lease.loaded_at, lease.started_at, prefill, prompt_tokens=prompt_tokens,
                          reports_cached=self.reports_cached)
        events = lease.watch(self._generation_events(turn, shape, lease))
        return lease.hold(lambda: self._answer(request, body, name, behavior, events, _merge))

    def _prefill(self, lease: Lease | NoLease, body: dict) -> tuple[int, list[str] | None]:
        """With prompt caches: take the slot the runner picks for the prompt; return its length, and what it lacked."""
        if not self._prompt_cache:
            return 0, None
        tokens = _context_tokens(body, lease.context)
        cached = lease.load_prompt(tokens)
        return len(tokens), None if cached is None else tokens[cached:]

    def _require_capabilities(self, name: str, requested: str, body: dict, action: str) -> None:
        """Refuse, with Ollama's 400 answers, what the model cannot do."""
        capabilities = self.capabilities.get(name, [])
        if _think_on(body.get("think")) and "thinking" not in capabilities:
            abort(_error(400, f'"{requested}" does not support thinking'))
        if "completion" not in capabilities:
            abort(_error(400, f'"{requested}" does not support {action}'))
        if body.get("tools") and "tools" not in capabilities:
            abort(_error(400, f"{_qualified(name)} does not support tools"))

    def _thinks(self, name: str, body: dict) -> bool:
        """Tell whether the model thinks aloud: thinking models do unless told not to."""
        think = body.get("think")
        return "thinking" in self.capabilities.get(name, []) and (think is None or _think_on(think))

    def _generation_events(self, turn: _Turn, shape: Callable[..., dict], lease: Lease | NoLease) -> Iterator[dict]:
        """Yield a generation's chunks one chunk_delay apart, then its done object.

        With a prompt cache, the prompt's uncached tokens are read before the first chunk, after those of its
        runner's lower slots (prompt_eval_duration says how long that took), and every token processed goes
        into the request's cache slot as it is, so a client that leaves leaves them there.
        """
        if turn.prefill is not None:
            turn.prefill_seconds = lease.read(len(turn.prefill), self._prompt_token_seconds)
            lease.processed(turn.prefill)
        for part in turn.parts:
            if turn.prefill is not None:
                lease.processed(_answer_tokens(part))
            chunk = shape(turn.model, part, done=False)
            if turn.top_logprobs is not None and "content" in part:
                chunk["logprobs"] = [_logprob(part["content"], turn.top_logprobs)]
            yield chunk
            self._pause(turn.behavior.chunk_delay)
        yield shape(turn.model, turn.final, **turn.done_fields())

    def _spaced(self, events: list[dict], delay: float) -> Iterator[dict]:
        """Yield prepared events one delay apart."""
        for index, event in enumerate(events):
            if index:
                self._pause(delay)
            yield event

    def _answer(
        self,
        request: Request,
        body: dict,
        model: str,
        behavior: Behavior,
        events: Iterator[dict],
        merge: Callable[[list[dict]], dict],
    ) -> Response:
        """Stream events as NDJSON, or merge them into one JSON object if the request says stream false."""
        sock = request.environ["werkzeug.socket"]
        if body.get("stream") is False:
            return self._collect(sock, behavior, events, merge)
        record = StreamRecord(path=request.path, model=model, started=time.monotonic())
        self.streams.append(record)
        return Response(self._stream_lines(record, behavior, events, sock), content_type="application/x-ndjson")

    def _stream_lines(
        self, record: StreamRecord, behavior: Behavior, events: Iterator[dict], sock: socket.socket
    ) -> Iterator[bytes]:
        """Yield events as NDJSON lines with the scripted faults, noting in record how the stream ends."""
        with self._open:
            self._open_streams += 1
            self._open.notify_all()
        try:
            for index, event in enumerate(events):
                if index == 1 and behavior.hold_until_open:
                    self._hold_until_open(behavior.hold_until_open, behavior.hold_seconds)
                if index == behavior.drop_after:
                    _hang_up(sock)
                if index == behavior.error_after:
                    yield _ndjson_line({"error": behavior.error_message})
                    record.chunks_sent += 1
                    break
                if index == behavior.bad_line_after:
                    yield NOT_JSON_LINE
                    record.chunks_sent += 1
                if index == behavior.stall_after and self._peer_leaves_within(sock, behavior.stall_seconds):
                    record.aborted = True  # Ollama cancels a request whose client went away
                    return
                if index and peer_gone(sock):
                    # Go's server reads the connection meanwhile: a client that closed it, or only its sending
                    # half, cancels the request, and the runner stops before its next token.
                    record.aborted = True
                    return
                yield _ndjson_line(event)
                record.chunks_sent += 1
            record.completed = True
        except GeneratorExit:  # the server closes the stream when writing to the client fails
            record.aborted = True
            raise
        finally:
            record.closed_at = time.monotonic()
            with self._open:
                self._open_streams -= 1

    def _collect(
        self, sock: socket.socket, behavior: Behavior, events: Iterator[dict], merge: Callable[[list[dict]], dict]
    ) -> Response:
        """Run a whole stream, then answer with one JSON object, as Ollama does for stream false.

        A client that leaves meanwhile stops the run, as the request's context does in Ollama: its slot
        is free at once, not when the whole answer would have been made.
        """
        chunks = []
        for index, event in enumerate(events):
            if peer_gone(sock):
                self.left_whole.append(len(chunks))
                return _error(499, "request canceled")
            if index == behavior.drop_after:
                _hang_up(sock)
            if index == behavior.error_after:
                return _error(500, behavior.error_message)
            chunks.append(event)
        return _json(merge(chunks))

    def _hold_until_open(self, wanted: int, seconds: float) -> None:
        """Wait until wanted streams are open at once (or seconds pass), so a load test knows they overlapped."""
        deadline = time.monotonic() + seconds
        with self._open:
            while self._open_streams < wanted and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._open.wait(min(left, 0.5))

    def _pause(self, seconds: float) -> None:
        """Sleep for seconds, or less if the fake is stopping."""
        self._stopping.wait(seconds)

    def _peer_leaves_within(self, sock: socket.socket, seconds: float) -> bool:
        """Wait up to seconds; say whether the client hung up meanwhile, as Go's server notices."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            if readable_within(sock, min(left, 0.05)) and sock.recv(1, socket.MSG_PEEK) == b"":
                return True
        return False


# Requests

# Go's struct fields of each request body (api/types.go), which its decoder matches in any case.
_MESSAGE_FIELDS = ("role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id")
_INFERENCE_FIELDS = ("model", "stream", "format", "keep_alive", "options", "think", "truncate", "shift",
                     "_debug_render_only", "logprobs", "top_logprobs")
_REQUEST_FIELDS = {
    "/api/generate": (*_INFERENCE_FIELDS, "prompt", "suffix", "system", "template", "context", "raw", "images"),
    "/api/chat": (*_INFERENCE_FIELDS, "messages", "tools"),
    "/api/embed": ("model", "input", "keep_alive", "truncate", "dimensions", "options"),
    "/api/embeddings": ("model", "prompt", "keep_alive", "options"),
    "/api/show": ("model", "system", "template", "verbose", "options", "name"),
    "/api/pull": ("model", "insecure", "username", "password", "stream", "name"),
    "/api/push": ("model", "insecure", "username", "password", "stream", "name"),
    "/api/delete": ("model", "name"),
    "/api/copy": ("source", "destination"),
    "/api/create": ("model", "stream", "quantize", "draft_quantize", "from", "remote_host", "files", "draft_files",
                    "adapters", "template", "license", "system", "parameters", "messages", "renderer", "parser",
                    "requires", "info", "name", "quantization"),
}


def _as_request(path: str, value: Any, body: bytes = b"") -> Any:
    """Return a parsed body as Ollama's handler for path reads it: keys matched to fields as Go matches them.

    A field given twice is read as Go reads it too: a second ``options`` object merged into the first.
    """
    fields = _REQUEST_FIELDS.get(path)
    if fields is None:
        return value
    pairs = _go_strings(object_pairs(body)) if isinstance(value, dict) else None
    return as_struct(value, fields, {"messages": _MESSAGE_FIELDS}, maps=("options",), pairs=pairs)


def _parse_json(body: bytes) -> Any:
    """Return the parsed JSON body, or None if it is not JSON."""
    try:
        return _go_strings(json.loads(body))
    except ValueError:
        return None


def _go_strings(value: Any) -> Any:
    """Replace lone surrogates by U+FFFD, as Go's encoding/json decodes them.

    A loop, not recursion: Go decodes 10,000 levels of nesting, far more than Python's stack holds.
    """
    top = [value]
    pending: list[tuple[Any, Any]] = [(top, 0)]
    while pending:
        into, slot = pending.pop()
        item = into[slot]
        if isinstance(item, str):
            into[slot] = _go_string(item)
        elif isinstance(item, list):
            into[slot] = copy = list(item)
            pending.extend((copy, index) for index in range(len(copy)))
        elif isinstance(item, dict):
            into[slot] = copy = {_go_string(key): nested for key, nested in item.items()}
            pending.extend((copy, key) for key in copy)
    return top[0]


def _go_string(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _object(recorded: Recorded) -> dict:
    """Return the request's JSON object, or refuse the request with Ollama's 400 answer."""
    if isinstance(recorded.json, dict):
        return recorded.json
    text = recorded.body.decode(errors="replace")
    if not text.strip():
        abort(_error(400, "missing request body"))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        abort(_error(400, _go_syntax_error(text, problem)))
    abort(_error(400, f"json: cannot unmarshal {_go_kind(value)} into Go value of type api.Request"))


def _go_syntax_error(text: str, problem: json.JSONDecodeError) -> str:
    """Word a JSON syntax error roughly as Go's encoding/json does."""
    if problem.pos >= len(text.rstrip()):
        return "unexpected EOF"
    return f"invalid character {text[problem.pos]!r} looking for beginning of value"


def _allowed_host(host: str) -> bool:
    """Tell whether Ollama, listening on loopback, serves a request with this Host header."""
    hostname = urlsplit(f"//{host}").hostname or ""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        local_names = ("", "localhost", socket.gethostname().lower())
        return hostname in local_names or hostname.endswith((".localhost", ".local", ".internal"))
    return address.is_loopback or address.is_private or address.is_unspecified


def _allowed_origin(origin: str) -> bool:
    """Tell whether Ollama's default CORS rules let a request with this Origin header through."""
    return not origin or _LOCAL_ORIGIN.fullmatch(origin) is not None


def _canonical(name: str) -> str:
    """Return the model name with Ollama's default tag: "llama3.2" means "llama3.2:latest"."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _think_on(think: Any) -> bool:
    """Tell whether think turns thinking on, as Ollama's ThinkValue.Bool reads it: true, or a level."""
    return think is True or think in ("high", "medium", "low", "max")


def _is_zero_duration(value: Any) -> bool:
    """Tell whether a keep_alive value means zero (0, "0", "0s", "0m", ...)."""
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, str) and _ZERO_DURATION.fullmatch(value.strip()) is not None


def _prompt_of_generate(body: dict) -> _Prompt | None:
    """Return what a /api/generate request asks, or None if its prompt is empty."""
    prompt = body.get("prompt") or ""
    if not prompt:
        return None
    return _Prompt(text=prompt, words=_count_words(body.get("system"), prompt), tools_offered=False)


def _prompt_of_chat(body: dict) -> _Prompt | None:
    """Return what a /api/chat request asks, or None if it has no messages."""
    messages = body.get("messages") or []
    if not messages:
        return None
    said = [message.get("content") or "" for message in messages if message.get("role") == "user"]
    return _Prompt(
        text=said[-1] if said else "",
        words=_count_words(*(message.get("content") for message in messages)),
        tools_offered=bool(body.get("tools")),
        after_tool_result=messages[-1].get("role") == "tool",
    )


def _embed_inputs(value: Any) -> list[str]:
    """Return the texts of an /api/embed input, refusing what Ollama refuses."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(text, str) for text in value):
        return value
    abort(_error(400, "invalid input type"))


def _create_digests(files: Any) -> list[str]:
    """Return the digests of /api/create's files, decoded as Go decodes a map[string]string."""
    if not isinstance(files, dict):
        abort(_error(400, f"json: cannot unmarshal {_go_kind(files)} into Go struct field "
                          "CreateRequest.files of type map[string]string"))
    for digest in files.values():
        if digest is not None and not isinstance(digest, str):
            abort(_error(400, f"json: cannot unmarshal {_go_kind(digest)} into Go struct field "
                              "CreateRequest.files of type string"))
    # Go leaves a string it is given null for empty.
    return [digest or "" for digest in files.values()]


def _go_kind(value: Any) -> str:
    """Name a JSON value's kind as Go's encoding/json does in its errors."""
    kinds = {list: "array", dict: "object", str: "string", bool: "bool", type(None): "null"}
    return kinds.get(type(value), "number")


def _blob_key(digest: str) -> str:
    """Return the digest as sha256:<hex>, refusing a malformed one as Ollama does."""
    match = _DIGEST.fullmatch(digest)
    if match is None:
        abort(_error(400, "invalid digest format"))
    return f"sha256:{match[1]}"


def _digest_of(stream: IO[bytes]) -> tuple[str, int]:
    """Hash a request body piece by piece; return its sha256:<hex> digest and its size."""
    hasher, size = hashlib.sha256(), 0
    while piece := stream.read(BLOB_PIECE_SIZE):
        hasher.update(piece)
        size += len(piece)
    return f"sha256:{hasher.hexdigest()}", size


# Answers


def _json(payload: Any, status: int = 200) -> Response:
    """Answer with a JSON object as Gin's c.JSON writes it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type="application/json; charset=utf-8")


def _error(status: int, message: str) -> Response:
    """Answer with Ollama's error object."""
    return _json({"error": message}, status)


def _empty(status: int) -> Response:
    """Answer with no body and no Content-Type, as Go's net/http does."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def _page_not_found(request: Request, recorded: Recorded) -> Response:
    """Answer an unknown path as Gin does."""
    return Response("404 page not found", status=404, content_type="text/plain")


def _method_not_allowed(request: Request, recorded: Recorded, allowed: list[str]) -> Response:
    """Answer a known path asked with the wrong method as Gin (1.10, Ollama's) does: naming the methods it has."""
    response = Response("405 method not allowed", status=405, content_type="text/plain")
    response.headers["Allow"] = ", ".join(method for method in allowed if method != "HEAD")
    return response


def _not_pulled(requested: str) -> str:
    """Return the message Ollama gives when asked to run a model it does not have."""
    return f'model "{requested}" not found, try pulling it first'


def _qualified(name: str) -> str:
    """Return the fully qualified name Ollama uses in capability errors."""
    return f"registry.ollama.ai/{name if '/' in name else 'library/' + name}"


def _hang_up(sock: socket.socket) -> NoReturn:
    """Cut the connection without finishing the response, as a crashing server would."""
    sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("the fake dropped the connection as scripted")  # werkzeug ignores these


def _ndjson_line(event: dict) -> bytes:
    """Serialize one event as an NDJSON line."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _generate_object(model: str, part: dict, **tail: Any) -> dict:
    """Build a /api/generate answer object from message fields and the fields after them."""
    head = {"model": model, "created_at": _now(), "response": part.get("content", "")}
    if "thinking" in part:
        head["thinking"] = part["thinking"]
    return {**head, **tail}


def _chat_object(model: str, part: dict, **tail: Any) -> dict:
    """Build a /api/chat answer object from message fields and the fields after them."""
    message = {"role": "assistant", "content": "", **part}
    return {"model": model, "created_at": _now(), "message": message, **tail}


def _merge(chunks: list[dict]) -> dict:
    """Fold a generation's chunks into the one object Ollama answers when stream is false."""
    final = chunks[-1]
    fields = [chunk.get("message", chunk) for chunk in chunks]
    text_key = "content" if "message" in final else "response"
    fields[-1][text_key] = "".join(field[text_key] for field in fields)
    thinking = "".join(field.get("thinking", "") for field in fields)
    calls = [call for field in fields for call in field.get("tool_calls", [])]
    if thinking:
        fields[-1]["thinking"] = thinking
    if calls:
        fields[-1]["tool_calls"] = calls
    logprobs = [entry for chunk in chunks for entry in chunk.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _logprob(token: str, top: int) -> dict:
    """Return the documented Logprob object of a generated token, with top alternatives."""
    alternatives = [token, token.upper(), token.strip() or "_", "?"][:top]
    return {"token": token, "logprob": -0.25, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": -0.25 - i, "bytes": list(t.encode())}
                             for i, t in enumerate(alternatives)]}


def _latest(statuses: list[dict]) -> dict:
    """Return the last progress object, which Ollama sends alone when stream is false."""
    return statuses[-1]


def _layers(name: str) -> list[tuple[str, int]]:
    """Return the (digest, size) of each layer of a model, made up but stable."""
    sizes = (2_019_377_376, 7_711, 1_429)
    return [
        (f"sha256:{hashlib.sha256(f'{name}#{index}'.encode()).hexdigest()}", size) for index, size in enumerate(sizes)
    ]


def _pull_statuses(name: str) -> list[dict]:
    """Return the progress objects of pulling a model, in Ollama's order."""
    statuses = [{"status": "pulling manifest"}]
    for digest, total in _layers(name):
        status = f"pulling {digest[7:19]}"
        statuses += [
            {"status": status, "digest": digest, "total": total, "completed": total * step // 4} for step in range(1, 5)
        ]
    endings = ("verifying sha256 digest", "writing manifest", "removing any unused layers", "success")
    return statuses + [{"status": status} for status in endings]


def _push_statuses(name: str) -> list[dict]:
    """Return the progress objects of pushing a model, in Ollama's order."""
    statuses = [{"status": "retrieving manifest"}]
    for digest, total in _layers(name):
        statuses.append({"status": "starting upload", "digest": digest, "total": total})
        statuses += [
            {"status": f"pushing {digest[7:19]}", "digest": digest, "total": total, "completed": total * step // 2}
            for step in (1, 2)
        ]
    return statuses + [{"status": "pushing manifest"}, {"status": "success"}]


# Values


def _now() -> str:
    """Return the current time as Ollama stamps created_at."""
    return _rfc3339(datetime.now(timezone.utc))


def _rfc3339(moment: datetime) -> str:
    """Format a UTC time as RFC 3339 with microseconds and Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ns(seconds: float) -> int:
    """Convert seconds to whole nanoseconds."""
    return int(seconds * 1e9)


def _tokens(text: str) -> list[str]:
    """Split text into the pieces the fake streams: each word with the whitespace after it."""
    return _TOKEN.findall(text)


def _context_tokens(body: dict, num_ctx: int | None) -> list[str]:
    """A chat's prompt tokens as Ollama renders it for a context of ``num_ctx``: its first messages dropped, its
    system messages kept, until it fits; the last message always (``chatPrompt`` in server/prompt.go)."""
    tokens, messages = _prompt_tokens(body), body.get("messages")
    if num_ctx is None or not isinstance(messages, list) or len(tokens) <= num_ctx:
        return tokens  # tokenized once: a coding agent's prompt is tens of thousands of tokens
    for first in range(1, len(messages)):
        kept = [m for m in messages[:first] if isinstance(m, dict) and m.get("role") == "system"] + messages[first:]
        tokens = _prompt_tokens({**body, "messages": kept})
        if first == len(messages) - 1 or len(tokens) <= num_ctx:
            return tokens
    return tokens


def _prompt_tokens(body: dict) -> list[str]:
    """Split a prompt into tokens as a small tokenizer would its template's rendering.

    Tools as JSON, ChatML around each message, words and marks a token each, and a token per image
    that stands for its content. A chat ends with the assistant's opening, which its next turn repeats
    with the answer after it: that turn's prompt continues what the cache slot held after this one.
    """
    tokens = [token for tool in body.get("tools") or [] for token in _pieces(json.dumps(tool))]
    if body.get("system"):
        tokens += _pieces(f"<|im_start|>system\n{body['system']}<|im_end|>")
    for message in body.get("messages") or []:
        tokens += [*_pieces(f"<|im_start|>{message.get('role')}\n"), *_image_tokens(message.get("images")),
                   *_answer_tokens(message), *_pieces("<|im_end|>")]
    return tokens + _image_tokens(body.get("images")) + _pieces(body.get("prompt") or "<|im_start|>assistant")


def _answer_tokens(fields: dict) -> list[str]:
    """Split a message's (or a streamed chunk's) thinking, content and tool calls into tokens."""
    calls = json.dumps(fields["tool_calls"]) if fields.get("tool_calls") else ""
    return [token for text in (fields.get("thinking") or "", fields.get("content") or "", calls)
            for token in _pieces(f"{text}")]


def _image_tokens(images: Any) -> list[str]:
    """Return one token per image, which only the same image matches."""
    return [f"<image {hashlib.sha256(f'{image}'.encode()).hexdigest()[:16]}>" for image in images or ()]


def _pieces(text: str) -> list[str]:
    """Split text into words and marks, a token each."""
    return _PROMPT_PIECE.findall(text)


def _count_words(*texts: Any) -> int:
    """Count the words in those texts that are strings."""
    return sum(len(text.split()) for text in texts if isinstance(text, str))


def _embedding(text: str, dimensions: int) -> list[float]:
    """Return a unit vector that depends only on text, rounded to 6 places."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    generator = random.Random(seed)
    values = [generator.uniform(-1, 1) for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(value * value for value in values)) or 1.0
    return [round(value / norm, 6) for value in values]


def _model_entry(name: str, size: int = 4_920_753_328, **details: Any) -> dict:
    """Build a model's /api/tags entry; details override those of a generic 8B llama.

    A cloud model (its tag ``cloud`` or ``*-cloud``) names the model and host that run it, as Ollama lists one.
    """
    model, _, tag = name.rpartition(":")
    remote = ({"remote_model": f"{model}:{tag.removesuffix('-cloud')}" if tag != "cloud" else model,
               "remote_host": "https://ollama.com:443"} if tag == "cloud" or tag.endswith("-cloud") else {})
    return {
        "name": name,
        "model": name,
        **remote,
        "modified_at": _now(),
        "size": size,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
            **details,
        },
    }


def _default_models() -> dict[str, dict]:
    """Return the /api/tags entries of the models a fresh fake has."""
    entries = [
        _model_entry("llama3.2:latest", 2_019_393_189, parameter_size="3.2B"),
        _model_entry("qwen3:8b", 5_225_388_164, family="qwen3", families=["qwen3"], parameter_size="8.2B"),
        _model_entry(
            "llava:latest", 4_733_363_377, families=["llama", "clip"], parameter_size="7B", quantization_level="Q4_0"
        ),
        _model_entry(
            "all-minilm:latest",
            45_960_996,
            family="bert",
            families=["bert"],
            parameter_size="23M",
            quantization_level="F16",
        ),
    ]
    return {entry["name"]: entry for entry in entries}


def main(argv: list[str] | None = None) -> None:
    """Serve a fake Ollama until interrupted, for trying the gateway by hand."""
    parser = argparse.ArgumentParser(description="Serve a fake Ollama on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--num-parallel", type=int, default=None,
                        help="run requests in this many slots per model, as Ollama does (default: all at once)")
    parser.add_argument("--max-loaded-models", type=int, default=DEFAULT_MAX_LOADED_MODELS,
                        help=f"with --num-parallel: models loaded at once (default {DEFAULT_MAX_LOADED_MODELS})")
    parser.add_argument("--load-seconds", type=float, default=0.0,
                        help="with --num-parallel: seconds a model takes to load (default 0)")
    args = parser.parse_args(argv)
    fake = FakeOllama(num_parallel=args.num_parallel, max_loaded_models=args.max_loaded_models,
                      load_seconds=args.load_seconds).start(args.port)
    for name in fake.models:
        fake.script(name, chunk_delay=args.chunk_delay)
    print(f"Fake Ollama listening on {fake.url}; Ctrl-C stops it.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
