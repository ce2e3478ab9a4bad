"""Every benchmark module imports: a benchmark the code moved away from is found here, not when it is next run.

And the load driver paces a connection as a person would (``bench.load.Job.pace``); the scheduling bench's
fairness index says how evenly a scenario's clients were served."""

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                 for path in (ROOT / "bench").rglob("*.py") if path.name != "__init__.py")
# In a process of its own: some benchmarks patch the standard library with gevent as they are imported.
IMPORT_EACH = """
import importlib, sys
failed = []
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        failed.append(f"{module}: {exc!r}")
print("\\n".join(failed))
"""


def test_every_benchmark_imports():
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH, *MODULES], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert MODULES and done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr[-2000:]


class _Answers(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every request of a connection comes on it
    arrivals: list[float] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).arrivals.append(time.monotonic())
        body = b'{"done": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_paced_connection_sends_each_request_no_sooner_than_its_pace_after_the_one_before():
    # Back to back, this connection would send hundreds in the time; paced, one every `pace` seconds. The driver
    # sends request k no sooner than k paces after it began, so the server cannot have received it sooner.
    # (Its own server: the fake Ollama closes each connection after one answer, the bench's fake records nothing.)
    from bench.load import Job, drive

    pace, duration = 0.1, 0.6
    _Answers.arrivals = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        began = time.monotonic()
        results = drive(Job(server.server_address[1], "/api/chat", {"model": "m"}, duration=duration, t0=began,
                            pace=pace))
    finally:
        server.shutdown()
        server.server_close()
    arrivals = _Answers.arrivals
    assert results.failed == 0 and results.completed == len(arrivals)
    assert 2 <= results.completed <= round(duration / pace) + 1, results.completed
    assert all(at >= began + number * pace for number, at in enumerate(arrivals)), [at - began for at in arrivals]


def test_the_bare_design_passes_each_answer_on_as_the_upstream_gave_it():
    # The floor the proxy is weighed against must do the proxy's job, no less: the same answer, streamed or whole.
    import requests

    from bench.bare import bare_proxy
    from bench.load import STAMP
    from bench.servers import fake_upstream

    def answers(port: int) -> list:
        got, chat = [], {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
        for body in ({**chat, "stream": False}, {**chat, "options": {"num_predict": 3}}):
            answer = requests.post(f"http://127.0.0.1:{port}/api/chat", json=body, timeout=10)
            got.append((answer.status_code, answer.headers["Content-Type"], STAMP.sub(b"", answer.content)))
        return got

    with fake_upstream(rate=100.0) as upstream, bare_proxy(upstream.port, workers=1) as bare:
        direct, through = answers(upstream.port), answers(bare.port)
    assert through == direct
    assert [len(content.splitlines()) for _, _, content in through] == [1, 4]  # whole; three chunks and the last


def test_a_row_says_each_target_met_or_not_against_direct_and_against_the_bare_design():
    from bench.run import Row

    latency = Row("1. c=1", "latency p50, ms", direct=0.1, proxy=1.6, bare=1.5,
                  target=("added", "≤", 1.0), bare_target=("over bare", "≤", 1.0))
    assert latency.verdict() == "added ≤ 1: NOT MET; over bare ≤ 1: met"
    rate = Row("1. c=16", "requests/s", direct=20000.0, proxy=540.0, compare="ratio", bare=600.0,
               target=("proxy", "≥", 1500), bare_target=("× bare", "≥", 0.9))
    assert rate.verdict() == "proxy ≥ 1500: NOT MET; × bare ≥ 0.9: met"
    slower = Row("1. c=16", "requests/s", direct=20000.0, proxy=530.0, compare="ratio", bare=600.0,
                 bare_target=("× bare", "≥", 0.9))
    assert slower.verdict() == "× bare ≥ 0.9: NOT MET"
    assert Row("2.", "streams complete", direct=100, proxy=100, compare="").verdict() == ""


def test_jains_index_is_one_for_equal_shares_and_one_over_n_when_one_client_gets_all():
    from bench.scheduling.measures import jain

    assert jain([15, 15, 15, 15]) == 1.0
    assert jain([60, 0, 0, 0]) == 0.25
    assert 0.25 < jain([33, 11, 9, 8]) < jain([18, 16, 15, 12]) < 1.0
    assert jain([0, 0]) != jain([0, 0])  # nothing served: no index (nan)
