"""Values and builders shared by the Anthropic translator tests."""

from __future__ import annotations

import itertools

PNG = "iVBORw0KGgo="
USER_HI = [{"role": "user", "content": "hi"}]


def ids():
    """Return a deterministic ``new_id``: toolu_1, toolu_2, ..."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}{next(counter)}"
