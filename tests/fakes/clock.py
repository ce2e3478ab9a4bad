"""A clock the test moves by hand, for code that takes its clock as a parameter."""

from __future__ import annotations


class ManualClock:
    """Reads ``now`` (monotonic seconds) until the test moves it."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
