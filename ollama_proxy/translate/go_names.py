"""Compare JSON keys with field names as Go's ``encoding/json`` does (pure, no I/O).

Go matches a key to a struct field exactly or else case-insensitively, under
Unicode simple folding: ``"Model"`` names ``model``, the Kelvin sign ``K``
(U+212A) folds to ``K`` and the long s ``ſ`` (U+017F) to ``S``. Ollama and
some OpenAI-compatible providers are written in Go, so the proxy reads and
checks field names the way they will.
"""

from __future__ import annotations

# The only non-ASCII runes whose fold set (Unicode simple folding) holds an ASCII letter.
_NON_ASCII_FOLDS = {"\u212a": "K", "\u017f": "S"}


def fold(name: str) -> str:
    """Return the form under which Go's decoder compares a key with a field name."""
    if name.isascii():
        return name.upper()
    return "".join(_NON_ASCII_FOLDS.get(c, c.upper() if c.isascii() else c) for c in name)
