"""Ollama's native chat API on a real llama.cpp ``llama-server``, run the way Ollama 0.33 runs it (tests only).

Ollama 0.30 and later start one ``llama-server`` per loaded model (llm/llama_server.go) with
``-c NUM_CTX*NUM_PARALLEL -np NUM_PARALLEL`` and nothing about its caches, so llama-server's defaults
hold: slots chosen by prompt similarity, a RAM prompt cache of 8 GiB, idle slots saved to it. Ollama
sends every request with ``cache_prompt: true``, never more at once than the slots (a semaphore), and
reports ``prompt_eval_count`` as llama-server's ``cache_n + prompt_n`` (``promptEvalCount``) and
``prompt_eval_duration`` as ``prompt_ms``: how many tokens came from the cache is not said (no release
has ``prompt_eval_cached_count``). ``reports_cached=True`` adds it, as ``cache_n``, as an unmerged
branch of Ollama's does; ``answers`` keeps ``cache_n`` either way.

This layer does the same for ``/api/chat`` (streamed NDJSON or whole), and answers ``/``,
``/api/version``, ``/api/tags``, ``/api/ps`` and ``/api/show`` for its one model, so that the proxy
and the tests' fake Ollama can be held to the real slot choice and the real cache counts. What each
chat read is kept in ``answers``. Everything else of Ollama's (templates, tools, thinking, model
loading) is out of scope: llama-server renders the chat with its own template.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.e2e.llama import MODEL_NAME, installed_files
from tests.e2e.server import die_with_parent, free_port, stop_process

MODEL = f"{MODEL_NAME}:latest"
VERSION = "0.33.0"
SHOW = {  # SmolLM2-135M's /api/show, as far as the proxy reads it
    "capabilities": ["completion"],
    "details": {"format": "gguf", "family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
    "model_info": {"general.architecture": "llama", "llama.block_count": 30, "llama.attention.head_count": 9,
                   "llama.attention.head_count_kv": 3, "llama.embedding_length": 576, "llama.context_length": 8192},
}


@dataclass(frozen=True)
class Answered:
    """What one chat read: its last message, llama-server's cache_n and prompt_n, its slot's wait and prefill."""

    last: str
    cached: int
    read: int
    prompt_ms: float
    first_token: float  # seconds from the request's arrival to its first token


class OllamaOnLlama:
    """One llama-server process with Ollama's chat API in front of it, on two free loopback ports."""

    def __init__(self, workdir: Path, *, num_parallel: int = 2, num_ctx: int = 4096, threads: int = 1,
                 reports_cached: bool = False) -> None:
        binary, model, template = installed_files()
        workdir.mkdir(parents=True, exist_ok=True)
        self.num_parallel = num_parallel
        self.num_ctx = num_ctx
        self.llama_url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "llama-server.log"
        # Ollama's own flags (llm/llama_server.go), and the tests' model and template
        self.argv = [str(binary), "--model", str(model), "--alias", MODEL_NAME, "--host", "127.0.0.1",
                     "--port", self.llama_url.rsplit(":", 1)[1], "--no-webui", "--offline",
                     "-c", str(num_ctx * num_parallel), "-np", str(num_parallel), "--threads", str(threads),
                     "--no-warmup", "--jinja", "--chat-template-file", str(template)]
        self.answers: list[Answered] = []
        self.reports_cached = reports_cached  # say prompt_eval_cached_count, as no Ollama release does (may change)
        self._slots = threading.BoundedSemaphore(num_parallel)  # Ollama's: never more requests than slots
        self._session = requests.Session()
        self._process: subprocess.Popen | None = None
        self._server = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> OllamaOnLlama:
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama-server did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        stop_process(self._process, 10)
        self._log.close()

    def __enter__(self) -> OllamaOnLlama:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def slots(self) -> list[dict]:
        """llama-server's ``/slots``: what each slot holds and does."""
        return self._session.get(self.llama_url + "/slots", timeout=10).json()

    def _healthy(self) -> bool:
        try:
            return self._session.get(self.llama_url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _app(self, environ, start_response):
        request = Request(environ)
        routes = {("GET", "/"): lambda: Response("Ollama is running"),
                  ("GET", "/api/version"): lambda: _json({"version": VERSION}),
                  ("GET", "/api/tags"): lambda: _json({"models": [self._listed()]}),
                  ("GET", "/api/ps"): lambda: _json({"models": [{**self._listed(), "context_length": self.num_ctx,
                                                                 "expires_at": "2099-01-01T00:00:00Z",
                                                                 "size_vram": 0}]}),
                  ("POST", "/api/show"): lambda: _json(SHOW),
                  ("POST", "/api/chat"): lambda: self._chat(request)}
        route = routes.get((request.method, request.path))
        response = route() if route is not None else _json({"error": "not found"}, 404)
        return response(environ, start_response)

    def _listed(self) -> dict:
        return {"name": MODEL, "model": MODEL, "size": 0, "digest": "0" * 64, "details": SHOW["details"]}

    def _chat(self, request: Request) -> Response:
        body = json.loads(request.get_data() or b"{}")
        if body.get("model") not in (MODEL_NAME, MODEL):
            return _json({"error": f"model '{body.get('model')}' not found"}, 404)
        options = body.get("options") or {}
        asked = {"messages": body.get("messages") or [], "stream": True, "cache_prompt": True,
                 "n_predict": options.get("num_predict", 16), "temperature": options.get("temperature", 0.0),
                 "seed": options.get("seed", 1)}
        arrived = time.monotonic()
        self._slots.acquire()
        try:
            upstream = self._session.post(self.llama_url + "/v1/chat/completions", json=asked, stream=True,
                                          timeout=(5, 600))
        except BaseException:
            self._slots.release()
            raise
        events = self._events(upstream, asked["messages"], arrived)
        if body.get("stream", True):
            return Response((_go_json(event) + "\n" for event in events), content_type="application/x-ndjson")
        chunks = list(events)
        return _json({**chunks[-1], "message": {"role": "assistant",
                                                "content": "".join(c["message"]["content"] for c in chunks)}})

    def _events(self, upstream: requests.Response, messages: list, arrived: float) -> Iterator[dict]:
        """Ollama's chunks of llama-server's stream; the slot is Ollama's to give again once the stream ends."""
        first = None
        try:
            for line in upstream.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                event = json.loads(line[6:])
                text = "".join((choice.get("delta") or {}).get("content") or "" for choice in event.get("choices", ()))
                if text:
                    first = first or time.monotonic()
                    yield self._chunk(text)
                if "timings" in event:
                    first = first or time.monotonic()
                    yield self._done(event["timings"], messages, arrived, first)
                    return
        finally:
            upstream.close()
            self._slots.release()

    def _chunk(self, text: str, **fields) -> dict:
        return {"model": MODEL, "created_at": datetime.now(timezone.utc).isoformat(),
                "message": {"role": "assistant", "content": text}, "done": False, **fields}

    def _done(self, timings: dict, messages: list, arrived: float, first: float) -> dict:
        cached, read = timings["cache_n"], timings["prompt_n"]
        last = messages[-1].get("content", "") if messages else ""
        self.answers.append(Answered(last, cached, read, timings["prompt_ms"], first - arrived))
        total = time.monotonic() - arrived
        said = {"prompt_eval_cached_count": cached} if self.reports_cached else {}
        return self._chunk("", done=True, done_reason="stop", total_duration=round(total * 1e9), load_duration=0,
                           prompt_eval_count=cached + read, **said,
                           prompt_eval_duration=round(timings["prompt_ms"] * 1e6),
                           eval_count=timings["predicted_n"], eval_duration=round(timings["predicted_ms"] * 1e6))


def _json(value: dict, status: int = 200) -> Response:
    return Response(_go_json(value), status, content_type="application/json")


def _go_json(value: dict) -> str:
    """JSON as Go's encoding/json writes it: compact, no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
