"""The design's floor: Flask, a ``requests`` session and gunicorn's gevent worker, with nothing of the proxy's.

``bench.run`` sends each load through this app too, beside the proxy: what the
proxy adds over it is what its own code costs; what this app adds over the
upstream is what the fixed design costs on this machine before a line of ours
runs. Every request is passed to the upstream as it came (body and content
type) and its answer streamed back as it arrives.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import requests
from flask import Flask, Response, request

from bench.procstat import workers as children
from bench.servers import serving

UPSTREAM_ENV = "BENCH_BARE_UPSTREAM"

app = Flask(__name__)
_session = requests.Session()


@app.route("/<path:path>", methods=["GET", "POST"])
def forward(path: str) -> Response:
    answer = _session.request(request.method, f"{os.environ[UPSTREAM_ENV]}/{path}", data=request.get_data(),
                              headers={"Content-Type": request.content_type or "application/json"}, stream=True)
    return Response(answer.iter_content(None), status=answer.status_code,
                    content_type=answer.headers.get("Content-Type"))


@contextlib.contextmanager
def bare_proxy(upstream_port: int, workers: int) -> Iterator[subprocess.Popen]:
    """Run this app under gunicorn with ``workers`` gevent workers; yield the master with ``.port`` set."""
    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", str(workers),
                "--worker-connections", "2000", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                "bench.bare:app"]
    with serving(argv, {**os.environ, UPSTREAM_ENV: f"http://127.0.0.1:{upstream_port}"}) as process:
        _wait_for_workers(process, workers)
        yield process


def _wait_for_workers(process: subprocess.Popen, count: int, timeout: float = 10.0) -> None:
    """Return once the master has forked its workers: the benchmark counts their CPU from the start."""
    deadline = time.monotonic() + timeout
    while len(children(process.pid)) < count:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the bare design's {count} workers did not start")
        time.sleep(0.05)
    time.sleep(0.5)  # each worker loads the app after it is forked
