"""What cli.text.printable escapes before a name from the store reaches an operator's terminal."""

from __future__ import annotations

import pytest

from ollama_proxy.cli.text import printable

CASES = [
    ("plain", "alice", "alice"),
    ("accents and spaces kept", "Zoë Müller-Ñ 名前", "Zoë Müller-Ñ 名前"),
    ("escape sequence", "eve\x1b[2J", "eve\\x1b[2J"),
    ("newline", "a\nb", "a\\x0ab"),
    ("bidirectional override", "x\u202eexe", "x\\u202eexe"),
    ("line separator", "a\u2028forged row", "a\\u2028forged row"),
    ("paragraph separator", "a\u2029forged row", "a\\u2029forged row"),
    ("no-break space kept", "a\u00a0b", "a\u00a0b"),
]


@pytest.mark.parametrize("text, shown", [(text, shown) for _, text, shown in CASES], ids=[c[0] for c in CASES])
def test_printable(text, shown):
    assert printable(text) == shown
