"""Read and say the durations an operator types (the commands, the admin page): ``90s``, ``30m``, ``24h``, ``7d``,
``2w``, or ``0``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FORMS = "90s, 30m, 24h, 7d, 2w"


def parse_duration(text: str) -> timedelta | None:
    """Return the duration ``text`` says (``0`` alone needs no unit), or None when it says none."""
    text = text.strip()
    if text == "0":
        return timedelta(0)
    matched = _DURATION.fullmatch(text)
    return None if matched is None else timedelta(**{_UNITS[matched.group(2)]: int(matched.group(1))})


def said(span: timedelta) -> str:
    """Say a duration in the largest unit that divides it: ``1h``, ``90m``, ``0``."""
    seconds = int(span.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s" if seconds else "0"
