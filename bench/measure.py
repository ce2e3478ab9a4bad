"""Run load jobs in driver processes while watching the servers' CPU and memory."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context

from bench import procstat
from bench.load import Job, Results, drive

SAMPLE_EVERY = 0.5  # seconds between two memory samples
START_DELAY = 0.5  # seconds the driver processes get to start before the first connection


@dataclass
class Run:
    """Everything one load run measured: the drivers' results merged, and each party's cost."""

    results: Results
    wall: float
    cpu: dict[str, float] = field(default_factory=dict)  # party -> CPU seconds used during the run
    driver_cpu_max: float = 0.0  # the busiest driver process's CPU seconds
    proxy_rss_max: int = 0

    def cores(self, party: str) -> float:
        """Return the share of one core the party used, on average, during the run."""
        return self.cpu.get(party, 0.0) / self.wall


def merge(parts: list[Results]) -> Results:
    """Return the results of several drivers as one."""
    merged = Results()
    for part in parts:
        merged.latencies.extend(part.latencies)
        merged.first_chunks.extend(part.first_chunks)
        merged.delays.extend(part.delays)
        merged.steady_delays.extend(part.steady_delays)
        merged.completed += part.completed
        merged.failed += part.failed
        merged.cpu += part.cpu
    return merged


def run(jobs: list[Job], parties: dict[str, list[int]], rss_of: str = "proxy") -> Run:
    """Run each job in its own driver process; watch the parties' CPU, and the memory of ``rss_of``."""
    t0 = time.monotonic() + START_DELAY
    jobs = [Job(**{**job.__dict__, "t0": t0}) for job in jobs]
    before = {name: procstat.cpu_seconds(pids) for name, pids in parties.items()}
    machine_before = procstat.machine_cpu_seconds()
    rss_max, started = 0, time.monotonic()
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("fork")) as pool:
        futures = [pool.submit(drive, job) for job in jobs]
        while wait(futures, SAMPLE_EVERY, FIRST_EXCEPTION).not_done:
            rss_max = max(rss_max, procstat.rss_bytes(parties.get(rss_of, [])))
        parts = [future.result() for future in futures]
    wall = time.monotonic() - started - START_DELAY
    cpu = {name: procstat.cpu_seconds(pids) - before[name] for name, pids in parties.items()}
    merged = merge(parts)
    cpu["driver"] = merged.cpu
    # Whatever else ran on the machine meanwhile (other jobs) competed for the same cores.
    cpu["others"] = max(0.0, procstat.machine_cpu_seconds() - machine_before - sum(cpu.values()))
    return Run(merged, wall, cpu, max(part.cpu for part in parts), rss_max)


def percentile(samples, fraction: float) -> float:
    """Return the nearest-rank percentile of the samples (nan if there are none)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
