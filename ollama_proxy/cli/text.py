"""Make text from the store safe to print on an operator's terminal."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """Show control and format characters as escapes (``\\x1b``, ``\\u202e``).

    Names come from people and the identity provider: a terminal escape in one would recolour or rewrite the
    operator's screen, a newline forge a row, a bidirectional override reverse what follows.
    """
    if text.isprintable():
        return text
    return "".join(ch if not unicodedata.category(ch).startswith("C") else
                   f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" for ch in text)
