"""Keep prometheus_client's multiprocess directory for the gunicorn master.

The workers write their metric values to files in one directory, which must
exist, empty, before the first of them starts (old files would add a previous
run's counts to this one's), and a worker that exits must be marked dead so
its in-flight gauge stops counting. This module runs in the master, from the
hooks in ``deploy/gunicorn.conf.py``: it must not import prometheus_client
before the directory is known, since prometheus_client reads it at import.
"""

from __future__ import annotations

import os
import shutil
import tempfile

PREFIX = "ollama-proxy-metrics-"


def prepare(path: str | None) -> str:
    """Return an empty metrics directory: ``path`` emptied of metric files, or a new temporary one."""
    if not path:
        return tempfile.mkdtemp(prefix=PREFIX)
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):  # prometheus_client's files only: the directory may hold others
            os.remove(os.path.join(path, name))
    return path


def worker_exited(path: str, pid: int) -> None:
    """Stop counting the live gauges of a worker that exited; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


def remove(path: str) -> None:
    """Remove a temporary directory made by ``prepare``; leave one the operator named."""
    if os.path.basename(path.rstrip("/")).startswith(PREFIX):
        shutil.rmtree(path, ignore_errors=True)
