"""Render the configuration reference, every section and key, as Markdown from the declarations.

    python -m ollama_proxy.config.reference > docs/configuration.md
"""

from __future__ import annotations

import json
import sys
import typing
from typing import Any

from ollama_proxy.config.checks import HttpUrl, MiB
from ollama_proxy.config.declare import Setting, declared_settings, entry_types, is_section, tag_of, without_extras
from ollama_proxy.config.loading import CONFIG_ENV, DEFAULT_CONFIG
from ollama_proxy.config.paths import PROJECT_ROOT
from ollama_proxy.config.schema import field_for
from ollama_proxy.config.settings import Settings

REGENERATE = "python -m ollama_proxy.config.reference > docs/configuration.md"
GiB = 1024 * MiB
_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string", HttpUrl: "URL", Any: "anything"}
_HEADER = ["| key | type | default | environment | meaning |", "|---|---|---|---|---|"]


def render_reference(root: type = Settings) -> str:
    """Return the reference page of every key ``root`` declares, section by section."""
    lines = ["# Configuration reference", "",
             f"<!-- Made by `{REGENERATE}` from the declarations in ollama_proxy/config/: edit those. -->", "",
             _introduction(), ""]
    for top in declared_settings(root):
        lines += _section(top)
    return "\n".join(lines).rstrip("\n") + "\n"


def _introduction() -> str:
    default = DEFAULT_CONFIG.relative_to(PROJECT_ROOT)
    return (f"The proxy reads `{default}`, or the file `${CONFIG_ENV}` names. Every key may be left out, but for "
            "those whose default says *required*. A misspelt key or a value of the wrong type stops the start "
            "with a message naming the key (`ollama-proxy check-config FILE` shows it without starting). A key "
            "with an environment variable takes the variable's value over the file's; a list is given there "
            "comma-separated. Durations are in seconds.")


def _section(top: Setting) -> list[str]:
    lines = [f"## `{top.key}`", ""]
    if is_section(top.annotation):
        lines += [top.help, ""]
        rows = _keys(top.key, top.annotation)
    else:
        rows = [(top.key, top)]
    lines += _table(rows)
    for path, key in rows:
        lines += _entries(path, key, level=3)
    return lines


def _keys(path: str, section: type) -> list[tuple[str, Setting]]:
    """Return the keys of a section by their dotted paths, those of a section within it (``admin.oidc``) in line."""
    rows = []
    for key in declared_settings(section):
        if is_section(without_extras(key.annotation)[0]):
            rows += [(f"{path}.{key.key}", key), *_keys(f"{path}.{key.key}", key.annotation)]
        else:
            rows.append((f"{path}.{key.key}", key))
    return rows


def _entries(path: str, holder: Setting, level: int) -> list[str]:
    """Return a table for each kind of entry a list or mapping holds, and for the entries those hold."""
    bare, _ = without_extras(holder.annotation)
    entry_path = path + ("[]" if typing.get_origin(bare) is tuple else ".*")
    lines = []
    for kind in entry_types(holder.annotation):
        tag = tag_of(kind)
        heading = f"`{entry_path}`" + (f" with `{tag[0]}: {tag[1]}`" if tag else "")
        rows = [(f"{entry_path}.{key.key}", key) for key in declared_settings(kind)]
        lines += [f"{'#' * level} {heading}", ""] + _table(rows, _tag_rows(entry_path, tag))
        for row_path, key in rows:
            lines += _entries(row_path, key, level + 1)
    return lines


def _tag_rows(entry_path: str, tag: tuple[str, str] | None) -> list[str]:
    if tag is None:
        return []
    key, value = tag
    return [f"| `{entry_path}.{key}` | string | required |  | `{value}` for this kind of entry |"]


def _table(rows: list[tuple[str, Setting]], first: list[str] = ()) -> list[str]:
    return [*_HEADER, *first, *(_row(path, key) for path, key in rows), ""]


def _row(path: str, key: Setting) -> str:
    cells = [f"`{path}`", type_name(key), default_text(key), env_text(key), key.help.replace("|", "\\|")]
    return "| " + " | ".join(cells) + " |"


def type_name(key: Setting) -> str:
    """Name the type of a key as a reader of the file sees it."""
    return getattr(field_for(key), "type_name", None) or _name_of(key.annotation)


def _name_of(annotation: Any) -> str:
    bare, _ = without_extras(annotation)
    args = typing.get_args(bare)
    if bare in _SCALARS:
        return _SCALARS[bare]
    if typing.get_origin(bare) is tuple:
        item = _name_of(args[0])
        return f"list of {item}s" if item in ("string", "integer", "number", "URL") else f"list of {item}"
    if typing.get_origin(bare) is dict:
        return f"mapping of {_name_of(args[0])} to {_name_of(args[1])}"
    if is_section(bare):
        return "mapping"
    raise TypeError(f"no name for the type {annotation!r}")


def default_text(key: Setting) -> str:
    """Show a key's default as the file would write it."""
    if key.required:
        return "required"
    if is_section(without_extras(key.annotation)[0]):
        return "its keys' defaults"
    value = key.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (tuple, list, dict)):
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{value}`" + (_size(value) if key.key.endswith("_bytes") else "")


def _size(value: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB")):
        if value >= unit and value % unit == 0:
            return f" ({value // unit} {name})"
    return ""


def env_text(key: Setting) -> str:
    if not key.env:
        return ""
    bare, _ = without_extras(key.annotation)
    return f"`{key.env}`" + (" (comma-separated)" if typing.get_origin(bare) is tuple else "")


def main() -> None:
    sys.stdout.write(render_reference())


if __name__ == "__main__":
    main()
