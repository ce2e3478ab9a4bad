"""How many of the proxy's modules one streamed request runs through: ``python -m bench.hops [--json]``.

The real app (``create_app``, configured as ``bench.servers`` configures it, plus one provider)
serves four streamed chats through Flask's test client, in this one process: native ``/api/chat``,
OpenAI ``/v1/chat/completions``, Anthropic ``/v1/messages``, and a provider model
(``fakeai:chat-10``) on native ``/api/chat``. Ollama is ``bench.fake_upstream`` (a process of its
own), the provider ``tests.fakes.openai_provider`` (a thread here); both send a chunk every ``GAP``
seconds, so each chunk is read on its own, as from a GPU. The process is gevent-patched as a
gunicorn worker is, so the scheduler, as a single instance runs it by default (SQLite, no Redis;
its arbiter in this process), admits the Ollama requests. ``--no-gevent`` leaves the scheduler out (the
dispatcher schedules only where gevent runs), as a sync worker would.

Each surface is sent once to warm up (the first request imports lazily), then ``--repeats`` times
with ``sys.setprofile`` on for the request alone: sent, its whole body read, the response closed.
Every Python call whose code is in a file under ``ollama_proxy/`` is recorded by its module (a
generator resumed is a call too: each chunk passing through a generator pipeline counts); calls
elsewhere (Flask, werkzeug, gevent, urllib3, the standard library) are skipped: they neither count
nor break a run of one module. Every greenlet of this thread is recorded (the one that opens the
upstream answer, the scheduler's); other threads are not.

How to read the table (the median run by calls; "hops seen" is the least and most of all runs):

- modules: the distinct modules of ``ollama_proxy`` whose code the request ran;
- hops: how often the module of a recorded call differs from that of the call before it, the
  hand-offs between modules; it grows with the chunks, so the chunks are given with it;
- packages: the distinct first parts of the paths under ``ollama_proxy/`` (``relay``,
  ``scheduler``; ``app`` for ``app.py``), for reference;
- of which fixed, per chunk: each surface is also sent asking for twice the chunks of text; the
  hops those added, per chunk, are the way one chunk takes, and the hops of an answer of no
  chunks (twice the first run's less the second's) the way the request takes (auth, schema,
  routing, translation, the scheduler, the close listeners);
- calls: the calls recorded; chunks: the answer's lines (NDJSON) or ``data:`` lines (SSE).

The modules are the same from run to run. The hops move by a few: now and then two chunks are read
at once, or background work (the pool's refresh, the usage writer) falls in the window; ``SETTLE``
seconds before each request let what the one before left for later (its report to the arbiter) run
outside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

CHUNKS = 10  # num_predict / max_tokens: the fake Ollama's stream has this many content chunks
# Seconds between two chunks of either fake: each chunk is read on its own, as from a GPU. Long enough that
# both answers (CHUNKS and twice as many) outlast the scheduler client's REPORT_AFTER: a request that has run
# that long is told to the arbiter, once; were only the longer answer told, that one message's hops would
# be counted as the chunks'.
GAP = 0.008
SETTLE = 0.2  # seconds before each measured request: longer than the scheduler client's REPORT_AFTER
PROVIDER = "fakeai"
PROVIDER_KEY = "sk-fake-provider-key"
PROMPT = [{"role": "user", "content": "Why is the sky blue? In one line."}]


def provider_model(chunks: int) -> str:
    """The provider's model that answers in ``chunks`` chunks of text."""
    return f"chat-{chunks}"


def _surfaces(chunks: int) -> dict[str, tuple[str, dict]]:
    """Each surface's path and streamed body, asking for ``chunks`` chunks of answer."""
    return {
        "native /api/chat": ("/api/chat", {"model": "bench", "messages": PROMPT, "stream": True,
                                           "options": {"num_predict": chunks}}),
        "OpenAI /v1/chat/completions": ("/v1/chat/completions", {"model": "bench", "messages": PROMPT,
                                                                 "stream": True, "max_tokens": chunks}),
        "Anthropic /v1/messages": ("/v1/messages", {"model": "bench", "messages": PROMPT, "stream": True,
                                                    "max_tokens": chunks}),
        "provider on /api/chat": ("/api/chat", {"model": f"{PROVIDER}:{provider_model(chunks)}", "messages": PROMPT,
                                                "stream": True}),
    }


class Recorder:
    """The module of every call into ``package``'s files, while on."""

    def __init__(self, package: Path) -> None:
        self.prefix = str(package) + os.sep
        self.names: dict[str, str | None] = {}  # file -> module path under the package, or None
        self.calls: list[str] = []

    def _profile(self, frame, event, arg) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        name = self.names.get(filename, "")
        if name == "":
            name = self.names[filename] = filename[len(self.prefix):] if filename.startswith(self.prefix) else None
        if name is not None:
            self.calls.append(name)

    @contextlib.contextmanager
    def on(self) -> Iterator[list[str]]:
        self.calls = []
        sys.setprofile(self._profile)
        try:
            yield self.calls
        finally:
            sys.setprofile(None)


def module_name(relative: str) -> str:
    """``relay/native.py`` -> ``relay.native``; ``scheduler/__init__.py`` -> ``scheduler``."""
    parts = relative.removesuffix(".py").split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def figures(calls: list[str], chunks: int) -> dict:
    """Count modules, hops and packages of one request's recorded calls."""
    modules = [module_name(c) for c in calls]
    hops = sum(1 for before, after in pairwise(modules) if before != after)
    return {"modules": len(set(modules)), "hops": hops, "packages": len({m.split(".")[0] for m in modules}),
            "calls": len(modules), "chunks": chunks, "touched": sorted(set(modules))}


def count_chunks(body: bytes, path: str) -> int:
    lines = [line for line in body.splitlines() if line.strip()]
    return len(lines) if path.startswith("/api/") else sum(1 for line in lines if line.startswith(b"data:"))


@contextlib.contextmanager
def fake_provider() -> Iterator[str]:
    """Run the fake OpenAI-compatible provider in this process (a greenlet once patched); yield its base URL."""
    from tests.fakes.openai_provider import FakeProvider

    logging.getLogger("werkzeug").disabled = True  # its line for every request it serves
    with FakeProvider(PROVIDER_KEY, models=(provider_model(CHUNKS), provider_model(2 * CHUNKS))) as provider:
        for chunks in (CHUNKS, 2 * CHUNKS):
            provider.script(provider_model(chunks), content="word " * chunks, fragment_size=5, chunk_delay=GAP)
        yield provider.base_url


def build_app(workdir: Path, upstream_port: int, provider_url: str):
    """The real app, configured as the bench configures it, plus one provider; logs and stores in ``workdir``."""
    from bench.servers import proxy_config
    from ollama_proxy.app import create_app
    from ollama_proxy.config import parse_settings

    raw = proxy_config(f"http://127.0.0.1:{upstream_port}", workdir / "logs")
    raw["store"] = {"url": f"sqlite:///{workdir / 'store.db'}"}
    raw["ratelimit"] = {"storage_url": f"sqlite:///{workdir / 'ratelimit.db'}"}
    raw["backends"] = [{"name": PROVIDER, "type": "openai", "base_url": provider_url, "api_key_env": "FAKEAI_KEY",
                        "models": [provider_model(CHUNKS), provider_model(2 * CHUNKS)]}]
    return create_app(parse_settings(raw, "bench.hops", environ={"FAKEAI_KEY": PROVIDER_KEY}))


def measure(repeats: int) -> dict:
    """Trace every surface; return the figures with what the run was."""
    import ollama_proxy
    from bench.servers import TOKEN, fake_upstream
    from ollama_proxy.dispatch.dispatcher import DISPATCHER
    from ollama_proxy.greenlets import gevent_active
    from ollama_proxy.scheduler.transport.client import REPORT_AFTER

    if CHUNKS * GAP <= REPORT_AFTER:
        raise SystemExit(f"an answer of {CHUNKS} chunks {GAP}s apart ends before REPORT_AFTER ({REPORT_AFTER}s)")

    package = Path(ollama_proxy.__file__).resolve().parent
    print(f"tracing {package}", file=sys.stderr)
    recorder = Recorder(package)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    results = {}
    with fake_upstream(1 / GAP) as upstream, fake_provider() as provider_url, \
            tempfile.TemporaryDirectory(prefix="ollama-proxy-hops-") as workdir:
        app = build_app(Path(workdir), upstream.port, provider_url)
        client = app.test_client()

        def send(path: str, body: dict) -> bytes:
            answer = client.post(path, json=body, headers=headers, buffered=True)
            if answer.status_code != 200:
                raise SystemExit(f"{path} answered {answer.status_code}: {answer.get_data()[:300]!r}")
            return answer.get_data()

        for path, body in _surfaces(CHUNKS).values():
            send(path, body)  # warm up: lazy imports, connections, the arbiter

        def median_run(path: str, body: dict) -> dict:
            runs = []
            for _ in range(repeats):
                time.sleep(SETTLE)  # what the request before left to do later (report to the arbiter) is done
                with recorder.on() as calls:
                    data = send(path, body)
                runs.append(figures(calls, count_chunks(data, path)))
            runs.sort(key=lambda run: (run["calls"], run["hops"]))
            hops = [run["hops"] for run in runs]
            return {**runs[len(runs) // 2], "hops_seen": [min(hops), max(hops)]}

        longer = _surfaces(2 * CHUNKS)
        for surface, (path, body) in _surfaces(CHUNKS).items():
            results[surface] = run = median_run(path, body)
            twice = median_run(*longer[surface])
            per_chunk = (twice["hops"] - run["hops"]) / max(1, twice["chunks"] - run["chunks"])
            run["hops_per_chunk"] = round(per_chunk, 1)
            run["hops_fixed"] = 2 * run["hops"] - twice["hops"]  # the hops of an answer of no chunks
        scheduled = getattr(app.extensions.get(DISPATCHER), "scheduled", None)
    return {"package": str(package), "gevent_active": gevent_active(), "scheduled": scheduled,
            "repeats": repeats, "surfaces": results}


def table(found: dict) -> str:
    lines = [f"package {found['package']}; gevent active: {found['gevent_active']}; "
             f"scheduler admits Ollama requests: {found['scheduled']}; the median run of {found['repeats']} by calls",
             "",
             "| surface | modules | hops | hops seen | of which fixed | per chunk | packages | calls | chunks |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for surface, row in found["surfaces"].items():
        low, high = row["hops_seen"]
        lines.append(f"| {surface} | {row['modules']} | {row['hops']} | {low}-{high} | {row['hops_fixed']} "
                     f"| {row['hops_per_chunk']} | {row['packages']} | {row['calls']} | {row['chunks']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, with the modules touched")
    parser.add_argument("--repeats", type=int, default=9, help="measured requests per surface (the median kept)")
    parser.add_argument("--no-gevent", action="store_true", help="do not patch: no scheduler, as a sync worker")
    args = parser.parse_args(argv)
    if not args.no_gevent:
        from gevent import monkey
        monkey.patch_all()
    found = measure(max(1, args.repeats))
    print(json.dumps(found, indent=2) if args.json else table(found))


if __name__ == "__main__":
    main()
