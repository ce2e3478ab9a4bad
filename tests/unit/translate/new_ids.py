"""A deterministic ``new_id`` for the translators, which take their id maker as a parameter."""

from __future__ import annotations

import itertools


def counter_ids():
    """Return a new_id that numbers ids 1, 2, 3 ... after their prefix (toolu_1, call_2, ...)."""
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}{next(numbers)}"
