"""Log the garbage collector's pauses of a process started with this directory on PYTHONPATH.

``bench.profile --gc`` starts the proxy so: each worker appends one line per
collection that took 1 ms or more (wall time) to ``$BENCH_GC_LOG``:
``<pid> <generation> <wall ms> <CPU ms> <objects collected> <objects left in generation 2>``
(the last is counted after full collections only, else 0). Wall time above CPU
time is time the process waited for a core mid-collection.
"""

import gc
import os
import time

_LOG = os.environ.get("BENCH_GC_LOG")
_started = [0.0, 0.0]


def _on_collection(phase: str, info: dict) -> None:
    """Time each collection; log the long ones."""
    if phase == "start":
        _started[:] = time.perf_counter(), time.thread_time()
        return
    wall, cpu = (time.perf_counter() - _started[0]) * 1e3, (time.thread_time() - _started[1]) * 1e3
    if wall >= 1.0:
        oldest = len(gc.get_objects(2)) if info["generation"] == 2 else 0
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {info['generation']} {wall:.2f} {cpu:.2f} {info['collected']} {oldest}\n")


if _LOG:
    gc.callbacks.append(_on_collection)
