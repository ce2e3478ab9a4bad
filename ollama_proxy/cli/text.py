"""Make text from the store safe to print on an operator's terminal."""

from __future__ import annotations

import unicodedata

# Every C category (control, format, ...), and the line and paragraph separators (U+2028, U+2029): a viewer
# that honours them starts a new line there, so they could forge a row as a newline would.
_ESCAPED = ("C", "Zl", "Zp")


def printable(text: str) -> str:
    """Show control, format and line-breaking characters as escapes (``\\x1b``, ``\\u202e``, ``\\u2028``).

    Names come from people and the identity provider: a terminal escape in one would recolour or rewrite the
    operator's screen, a newline forge a row, a bidirectional override reverse what follows.
    """
    if text.isprintable():
        return text
    return "".join(ch if not unicodedata.category(ch).startswith(_ESCAPED) else
                   f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" for ch in text)
