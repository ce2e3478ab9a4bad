"""Read JSON objects into struct fields the way Go's encoding/json does, for the fake servers.

Go matches an object key to a struct field by its JSON name, exactly or else case-insensitively
(``"Model"`` and ``"MODEL"`` set ``model``), and of several keys naming one field the last one
wins. Its folding is Unicode's simple folding, so the Kelvin sign ``K`` (U+212A) folds to ``K``
and the long s ``ſ`` (U+017F) to ``S``: ``"\u212aeep_alive"`` sets ``keep_alive``. A ``map``
field (Ollama's ``options``) keeps its keys exactly as sent, the last of a key given twice winning.
A field given twice is decoded twice into the same place: a scalar takes the last value, but a
second object for a map field is merged into the first (``object_pairs`` keeps both for
``as_struct`` to merge). Keys naming no field are ignored by Go; here they are kept as they are, so
tests can still see what arrived.
"""

from __future__ import annotations

import json
from json.decoder import JSONObject
from typing import Any

# The only non-ASCII runes whose simple-fold set holds an ASCII letter.
_NON_ASCII_FOLDS = {"\u212a": "K", "\u017f": "S"}


def fold(name: str) -> str:
    """Return the form under which Go's decoder compares a key with a field's JSON name."""
    return "".join(_NON_ASCII_FOLDS.get(c, c.upper() if c.isascii() else c) for c in name)


def object_pairs(text: bytes | str) -> list[list] | None:
    """Return the ``[key, value]`` pairs of a JSON object in order, a key given twice twice; None if not an object."""
    try:
        text = text.decode() if isinstance(text, bytes) else text
    except UnicodeDecodeError:  # UTF-16 or 32, which json.loads reads too
        return None
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if not text.startswith("{", start):
        return None
    decoder = json.JSONDecoder()
    pairs, _ = JSONObject((text, start + 1), True, decoder.scan_once, None, list)
    return [list(pair) for pair in pairs]


def as_struct(value: Any, fields: tuple[str, ...], nested: dict[str, tuple[str, ...]] | None = None,
              maps: tuple[str, ...] = (), pairs: list[list] | None = None) -> Any:
    """Return an object with its keys read onto ``fields`` as Go reads them; lists in ``nested`` likewise.

    ``nested`` names the fields holding a list of objects of another struct, with that struct's fields;
    ``maps`` the fields that are Go maps. ``pairs`` (from ``object_pairs``) are the object's keys as sent,
    repeats kept: without them a key given twice is already down to its last value.
    """
    if not isinstance(value, dict):
        return value
    by_fold = {fold(name): name for name in fields}
    out: dict[str, Any] = {}
    for key, item in pairs if pairs is not None else value.items():
        name = key if key in fields else by_fold.get(fold(key), key)
        earlier = out.pop(name, None)  # the last key naming a field wins, and stands where it came
        if name in maps and isinstance(earlier, dict) and isinstance(item, dict):
            item = {**earlier, **item}  # decoded into the map the earlier key made
        out[name] = item
    for name, item_fields in (nested or {}).items():
        if isinstance(out.get(name), list):
            out[name] = [as_struct(item, item_fields) for item in out[name]]
    return out
