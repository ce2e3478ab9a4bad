"""A runner's prompt reading as llama-server does it: every slot's unread prompt tokens share one reader.

llama-server builds each batch from its slots in order (server-context.cpp, update_slots): slot 0's waiting
prompt tokens first, then slot 1's, up to the batch size. So two prompts read at once do not each go at the
runner's rate: the lower slot's goes at it, the other waits behind it, and both together take as long as one
after the other. Measured on the real one (SmolLM2, one thread, two slots): a 1,932-token prompt alone read
in 9.4 s; two sent together read in 9.7 s (slot 0) and 17.5 s (slot 1).
"""

from __future__ import annotations

import threading
import time

STOP_CHECK_SECONDS = 0.1  # how soon a reading notices that the fake stops


class PromptReader:
    """The prompt reading of one runner: tokens read at one rate, the lowest slot's first."""

    def __init__(self, seconds_per_token: float) -> None:
        self.seconds_per_token = seconds_per_token
        self._left: dict[int, float] = {}  # slot -> its prompt's tokens not yet read
        self._read_until = time.monotonic()
        self._changed = threading.Condition()

    def read(self, slot: int, tokens: int, stopping: threading.Event) -> float:
        """Read a prompt's ``tokens`` for ``slot``, after what lower slots wait to read; return the seconds it
        took (what llama-server reports as the prompt's reading), or as long as it went on until ``stopping``."""
        if not self.seconds_per_token:
            return 0.0  # read at once: a fake whose prompts take no time
        began = time.monotonic()
        with self._changed:
            self._catch_up()
            self._left[slot] = tokens
            self._changed.notify_all()  # a higher slot now reads later
            while self._left[slot] > 0 and not stopping.is_set():
                ahead = sum(left for other, left in self._left.items() if other <= slot)
                self._changed.wait(min(ahead * self.seconds_per_token, STOP_CHECK_SECONDS))
                self._catch_up()
            del self._left[slot]
            self._changed.notify_all()  # a higher slot now reads sooner
        return time.monotonic() - began

    def _catch_up(self) -> None:
        """Give the tokens read since last time to the waiting prompts, lowest slot first."""
        now = time.monotonic()
        budget = (now - self._read_until) / self.seconds_per_token
        self._read_until = now
        for slot in sorted(self._left):
            taken = min(budget, self._left[slot])
            self._left[slot] -= taken
            budget -= taken
