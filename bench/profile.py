"""Profile the proxy's workers under load with py-spy: ``python -m bench.profile [--load streams|requests]``.

py-spy samples every worker (``--gil``, the default: only Python code holding
the GIL; ``--no-gil``: system calls too) while a
load runs, writes the raw stacks to ``bench/out/``, and this prints where the
samples fall: by function itself (leaf), and by function including what it
calls (restricted to the proxy's code and the libraries it drives).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench import procstat
from bench.load import Job, raise_open_files_limit
from bench.measure import percentile, run
from bench.servers import TOKEN, fake_upstream, proxy

OUT = Path(__file__).resolve().parent / "out"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")
_WATCHED = ("ollama_proxy/", "gunicorn/", "werkzeug/", "flask/", "urllib3/", "requests/", "gevent/",
            "marshmallow/", "http/", "socket.py", "json/", "logging/")


def load_job(kind: str, port: int, streams: int, seconds: float) -> Job:
    """Return the load to profile under: long streams, or whole answers back to back."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    messages = [{"role": "user", "content": "hi"}]
    if kind == "streams":
        count = int(20 * seconds)
        body = {"model": "bench", "messages": messages, "options": {"num_predict": count}}
        return Job(port, "/api/chat", body, connections=streams, duration=seconds, repeat=False, ramp=1.0,
                   stamps=count, headers=headers)
    body = {"model": "bench", "messages": messages, "stream": False}
    return Job(port, "/api/chat", body, connections=16, duration=seconds, headers=headers)


def record(master: int, seconds: float, output: Path, gil: bool) -> subprocess.Popen:
    """Start py-spy on the gunicorn master and its workers, for ``seconds``."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [py_spy, "record", "--pid", str(master), "--subprocesses", "--rate", "200",
            "--duration", str(int(seconds)), "--format", "raw", "--output", str(output), *(["--gil"] if gil else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frames(stack: str) -> list[tuple[str, str, str]]:
    """Return a raw stack's frames as (function, file, line), outermost first."""
    found = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match:
            found.append((match["function"], match["file"], match["line"]))
    return found


def summarize(raw: Path, top: int) -> str:
    """Return the top lines by own samples, and the top functions by samples including callees."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    lines: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    total = 0
    for text in raw.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        stack_frames, samples = frames(stack), int(count)
        total += samples
        if stack_frames:
            function, file, line = stack_frames[-1]
            own[(function, f"{file}:{line}")] += samples
        for function, file, line in {frame for frame in stack_frames if frame[1].startswith(_WATCHED)}:
            lines[(function, file)][line] += samples
        for key in {(function, file) for function, file, _ in stack_frames if file.startswith(_WATCHED)}:
            inclusive[key] += samples
    out = [f"{total} samples", "", "own time (leaf line):"]
    out += [f"  {n / total:6.1%}  {function}  {where}" for (function, where), n in own.most_common(top)]
    out += ["", "including callees (function, its busiest line):"]
    for (function, file), n in inclusive.most_common(top):
        line = lines[(function, file)].most_common(1)[0][0]
        out.append(f"  {n / total:6.1%}  {function}  {file}:{line}")
    return "\n".join(out)


def gc_pauses(log: Path) -> str:
    """Summarize the collections of 1 ms or more that bench/gcprobe logged, by generation."""
    pauses: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    oldest = 0
    for line in log.read_text().splitlines() if log.exists() else []:
        _pid, generation, wall, cpu, _collected, size = line.split()
        pauses[generation].append((float(wall), float(cpu)))
        oldest = max(oldest, int(size))
    out = ["garbage collections of 1 ms or more (wall), all workers:"]
    for generation, taken in sorted(pauses.items()):
        walls, cpus = [wall for wall, _ in taken], [cpu for _, cpu in taken]
        out.append(f"  generation {generation}: {len(taken)}, max {max(walls):.1f} ms wall / {max(cpus):.1f} ms CPU, "
                   f"total {sum(walls):.0f} ms wall / {sum(cpus):.0f} ms CPU")
    out.append(f"  largest oldest generation after a full collection: {oldest:,} objects")
    return "\n".join(out if pauses else out + ["  none"])


def main() -> None:
    """Start both servers, load the proxy, and print where its workers spend their time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", choices=("streams", "requests"), default="streams")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gc", action="store_true", help="log garbage collector pauses instead of sampling")
    parser.add_argument("--gil", action=argparse.BooleanOptionalAction, default=True,
                        help="count only samples holding the GIL (--no-gil: also time in system calls)")
    args = parser.parse_args()
    raise_open_files_limit()
    OUT.mkdir(exist_ok=True)
    raw, gc_log = OUT / f"py-spy-{args.load}{'' if args.gil else '-nogil'}.txt", OUT / f"gc-{args.load}.log"
    gc_log.unlink(missing_ok=True)
    env = {"PYTHONPATH": str(Path(__file__).parent / "gcprobe"), "BENCH_GC_LOG": str(gc_log)} if args.gc else None
    with fake_upstream(20.0) as upstream, proxy(upstream.port, args.workers, env) as server:
        job = load_job(args.load, server.port, args.streams, args.seconds)
        spy = None if args.gc else record(server.process.pid, args.seconds - 2, raw, args.gil)
        result = run([job], {"proxy": procstat.tree(server.process.pid)})
        if spy:
            spy.wait(60)
    delays = result.results.steady_delays
    print(f"load: {result.results.completed} done, {result.results.failed} failed, proxy CPU "
          f"{result.cores('proxy'):.0%} of a core, {result.results.completed / result.wall:.0f} answers/s"
          + (f", chunk delay p99 {percentile(delays, 0.99) * 1e3:.1f} ms (all streams open)" if delays else ""))
    print(gc_pauses(gc_log) if args.gc else f"stacks in {raw}\n" + summarize(raw, args.top))


if __name__ == "__main__":
    main()
