"""Resolve model aliases and apply per-model overrides to Ollama-shaped bodies (pure, no I/O).

Precedence, field by field: a model's ``enforce`` wins over everything; then
what the request says; then the model's ``defaults``; then the global
``models.defaults``. A field set to ``null`` in a request counts as absent.

``think``, ``keep_alive`` and ``exclude_reasoning`` live at the top of an
Ollama request; ``timeout`` is not sent (it is the model's read timeout); every
other field lives in ``options``. Names are compared as ``names.canonical``
reads them, for aliases and overrides alike: ``llama3.2``, ``Llama3.2`` and
``llama3.2:latest`` are one model, and when two entries name one model the
later one wins (the store's over the file's). An alias names a model, never
another alias. Who may use an alias is decided on the model it names, never on
the alias's own name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ollama_proxy.config.models import TIMEOUT, ModelOverride, ModelsSettings
from ollama_proxy.lines import LineDecoder
from ollama_proxy.routing.names import canonical

TOP_LEVEL = ("think", "keep_alive", "exclude_reasoning")
NO_OVERRIDE = ModelOverride()


def one_per_model(*tables: dict) -> dict:
    """Merge tables keyed by model names as written, keeping one entry per model: the last one given."""
    by_model = {}
    for table in tables:
        for name, value in table.items():
            by_model[canonical(name)] = (name, value)
    return dict(by_model.values())


def _value(body: dict, name: str):
    holder = body if name in TOP_LEVEL else body.get("options") or {}
    return holder.get(name)


def apply_override(body: dict, override: ModelOverride, global_defaults: dict[str, Any]) -> dict:
    """Return ``body`` with the override applied; the same object when nothing changes."""
    wanted = {}
    for layer in (global_defaults, override.defaults):  # the model's defaults win over the global ones
        wanted.update({name: value for name, value in layer.items() if _value(body, name) is None})
    wanted.update(override.enforce)
    wanted.pop(TIMEOUT, None)
    changes = {name: value for name, value in wanted.items() if _value(body, name) != value}
    if not changes:
        return body
    result = dict(body)
    options = dict(body.get("options") or {})
    for name, value in changes.items():
        if name in TOP_LEVEL:
            result[name] = value
        else:
            options[name] = value
    if options:
        result["options"] = options
    return result


@dataclass(frozen=True)
class ModelTable:
    """The aliases and overrides in force: the file's, with the store's merged over them."""

    aliases: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, ModelOverride] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def merged(cls, settings: ModelsSettings, stored_aliases: dict[str, str],
               stored_overrides: dict[str, dict]) -> ModelTable:
        """Merge the store's entries over the file's; a stored entry replaces one naming the same model.

        But for ``report_context``, which only the file sets: the file's stands for its model.
        """
        contexts = {canonical(model): override.report_context for model, override in settings.overrides.items()}
        overrides = {model: ModelOverride(dict(entry.get("defaults") or {}), dict(entry.get("enforce") or {}),
                                          entry.get("report_context") or contexts.get(canonical(model)))
                     for model, entry in stored_overrides.items()}
        return cls(one_per_model(settings.aliases, stored_aliases), one_per_model(settings.overrides, overrides),
                   dict(settings.defaults))

    @cached_property
    def _alias_keys(self) -> dict[str, str]:
        return {canonical(name): name for name in self.aliases}

    @cached_property
    def _override_keys(self) -> dict[str, str]:
        return {canonical(name): name for name in self.overrides}

    def _alias(self, name: str) -> str | None:
        key = self._alias_keys.get(canonical(name))
        return None if key is None else self.aliases[key]

    def _override_key(self, asked: str) -> str | None:
        """Return the key of the override of ``asked`` (an alias may have its own), else of its model."""
        return self._override_keys.get(canonical(asked)) or self._override_keys.get(canonical(self.resolve(asked)))

    def resolve(self, name: str) -> str:
        """Return the model an alias names (as the alias writes it), or the name itself."""
        return self._alias(name) or name

    def is_alias(self, name: str) -> bool:
        return self._alias(name) is not None

    def override_for(self, asked: str) -> ModelOverride:
        """Return the override of the name asked for (an alias may have its own), else of its model."""
        key = self._override_key(asked)
        return NO_OVERRIDE if key is None else self.overrides[key]

    def apply(self, asked: str, body: dict) -> dict:
        """Apply the override of ``asked`` and the global defaults to an Ollama-shaped body."""
        return apply_override(body, self.override_for(asked), self.defaults)

    def timeout_for(self, asked: str) -> tuple[float, str] | None:
        """Return the read timeout set for a model, if any, and the setting it comes from."""
        key = self._override_key(asked)
        override = self.overrides[key] if key is not None else NO_OVERRIDE
        for layer in ("enforce", "defaults"):
            seconds = getattr(override, layer).get(TIMEOUT)
            if seconds:
                return seconds, f"models.overrides.{key}.{layer}.{TIMEOUT}"
        if self.defaults.get(TIMEOUT):
            return self.defaults[TIMEOUT], f"models.defaults.{TIMEOUT}"
        return None

    def aliases_of(self, model: str) -> list[str]:
        """Return the aliases naming ``model``, as clients may ask for them (tag as written)."""
        wanted = canonical(model)
        return sorted(alias for alias, target in self.aliases.items() if canonical(target) == wanted)

    def may_use(self, may_use_name, asked: str) -> bool:
        """Tell whether a caller may use ``asked``, judged by the model that runs: an alias's, or itself.

        An alias is only another name: a key that may not use its model may not
        use it either, whatever the alias is called.
        """
        return may_use_name(self.resolve(asked))

    def with_aliases(self, entries: list[dict]) -> list[dict]:
        """Return listing entries (``/api/tags``, ``/api/ps``) plus one per alias of a listed model."""
        listed = {canonical(e.get("name") or e.get("model") or ""): e for e in entries}
        extra = []
        for alias, target in sorted(self.aliases.items()):
            entry = listed.get(canonical(target))
            if entry is not None and canonical(alias) not in listed:
                extra.append({**entry, "name": alias, "model": alias})
        return entries + extra


def renamed_line(line: bytes, name: str) -> bytes:
    """Return one NDJSON line of a native answer with ``model`` set to ``name`` (other lines as they are)."""
    try:
        chunk = json.loads(line)
    except ValueError:
        return line
    if not isinstance(chunk, dict) or "model" not in chunk:
        return line
    chunk["model"] = name
    return json.dumps(chunk, separators=(",", ":")).encode() + (b"\n" if line.endswith(b"\n") else b"")


def renamed_event_line(line: bytes, name: str) -> bytes:
    """Return one line of an SSE stream with the ``model`` of its data set to ``name`` (other lines as they are)."""
    if not line.startswith(b"data:"):
        return line
    payload = line[5:].strip()
    renamed = renamed_line(payload, name)
    if renamed is payload:
        return line  # [DONE], or data without a model
    return b"data: " + renamed + (b"\n" if line.endswith(b"\n") else b"")


def renamed_lines(chunks: Iterable[bytes], name: str, rename=renamed_line) -> Iterator[bytes]:
    """Rename the model of every line of a stream (NDJSON, or SSE with ``renamed_event_line``).

    Lines may be split across chunks: a partial line waits for its end.
    """
    decoder = LineDecoder()
    for chunk in chunks:
        lines = decoder.decode(chunk)
        if lines:
            yield b"".join(rename(line + b"\n", name) for line in lines)
    for rest in decoder.flush():
        yield rename(rest, name)
