"""Read a process tree's CPU time and resident memory from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.processes import workers

_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """Return ``pid`` and its direct children (a gunicorn master and its workers)."""
    return [pid, *workers(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """Return the user + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def rss_bytes(pids: list[int]) -> int:
    """Return the processes' resident memory, summed."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def machine_cpu_seconds() -> float:
    """Return the CPU seconds every process on the machine has used since boot (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def machine() -> dict[str, str]:
    """Describe this machine: cores, CPU model, memory, load."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), "unknown")
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"cores": str(os.cpu_count()), "cpu": model, "memory": f"{int(memory) / 1024 ** 2:.1f} GiB",
            "kernel": os.uname().release, "load average": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
