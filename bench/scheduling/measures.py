"""The figures the scheduling benchmark prints, worked out from plain numbers: no clock, no sockets.

Times are seconds on one clock (``time.monotonic`` of the benchmark's process, which the fake
servers share); an interval is a ``(start, end)`` pair.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge intervals into the disjoint, sorted ones that cover the same time."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def overlap(interval: Interval, covered: Sequence[Interval]) -> float:
    """Return how much of interval lies within the disjoint intervals covered."""
    start, end = interval
    return sum(max(0.0, min(end, c_end) - max(start, c_start)) for c_start, c_end in covered)


def length(covered: Sequence[Interval]) -> float:
    return sum(end - start for start, end in covered)


def clip(interval: Interval, window: Interval) -> Interval:
    """Return the part of interval inside window (empty: end <= start)."""
    return max(interval[0], window[0]), min(interval[1], window[1])


def utilisation_while_waiting(busy: Iterable[Interval], waiting: Iterable[Interval], slots: int,
                              window: Interval) -> float:
    """Return the share of the slots that ran requests while any request waited, within window (nan: none waited)."""
    waited = union(clip(interval, window) for interval in waiting)
    if not waited:
        return float("nan")
    return sum(overlap(interval, waited) for interval in busy) / (slots * length(waited))


def fair_shares(demands: dict[str, float], capacity: float) -> dict[str, float]:
    """Split capacity by max-min fairness (equal weights): a principal wanting less than an equal part
    gets what it wants; the rest is split evenly among those wanting more (a demand may be ``inf``)."""
    shares, left, wanting = {}, capacity, dict(demands)
    while wanting:
        part = left / len(wanting)
        modest = {name: want for name, want in wanting.items() if want <= part}
        if not modest:
            shares.update({name: part for name in wanting})
            break
        for name, want in modest.items():
            shares[name] = want
            left -= want
            del wanting[name]
    return shares


def completions(count: int, slot_seconds: float, slots: int, ready_at: float) -> list[float]:
    """Return when each of count equal requests sent at 0 ends on a server with slots, ready at ready_at."""
    return [ready_at + slot_seconds * math.ceil((i + 1) / slots) for i in range(count)]


def best_assignment(requests: int, slot_seconds: float,
                    servers: Sequence[tuple[int, float]]) -> tuple[float, float, tuple]:
    """Try every assignment of equal requests, sent at once, to servers given as (slots, ready_at).

    Return the least mean completion, the max completion of that assignment, and how many requests
    it gives each server. A server's ready_at is its load time if the model is not loaded, else 0.
    """
    best = (math.inf, math.inf, ())
    for assignment in itertools.product(range(len(servers)), repeat=requests):
        counts = tuple(assignment.count(index) for index in range(len(servers)))
        ends = [end for (slots, ready_at), count in zip(servers, counts, strict=True)
                for end in completions(count, slot_seconds, slots, ready_at)]
        best = min(best, (sum(ends) / len(ends), max(ends), counts))
    return best


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """Return the nearest-rank p50 and p95 and the max of samples (nan if none)."""
    if not samples:
        return (float("nan"),) * 3
    ordered = sorted(samples)
    return (ordered[min(len(ordered) - 1, int(0.5 * len(ordered)))],
            ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], ordered[-1])


def jain(shares: Sequence[float]) -> float:
    """Jain's fairness index of ``shares`` (what each got): 1 when all got the same, 1/n when one got all (nan if
    none got anything)."""
    total, squares = sum(shares), sum(share * share for share in shares)
    return total * total / (len(shares) * squares) if squares else float("nan")
