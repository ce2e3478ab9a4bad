"""Declare each key of the configuration once, on the dataclass the app reads.

A section is a frozen dataclass. Each of its fields made by ``setting`` is a key
of the file: its name is the attribute, its type the annotation, and the call
says its default, a line of help and the environment variable that overrides it.
A field made by ``section`` holds a nested section. Fields made otherwise (a key
read from the environment alone, the file's name) are no keys of the file.

The marshmallow schema that checks the file (``schema.py``), the environment
overrides (``environment.py``) and the reference page (``reference.py``) are all
derived from these declarations: nothing about a key is written twice.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING
from typing import Annotated, Any

DECLARATION = "ollama_proxy.config.declaration"  # the metadata key a setting's field carries


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What a field declares besides its name, type and default."""

    help: str
    env: str | None = None  # the variable that overrides the key
    validate: Callable[[Any], Any] | None = None  # a marshmallow validator of the value
    key: str | None = None  # the key in the file, when the attribute is named otherwise
    then: Callable[[Any], Any] | None = None  # turns a checked value into the one the app reads
    field: Callable[..., Any] | None = None  # makes the marshmallow field, for what a type cannot say
    required: bool = False  # the file must give it, though the dataclass has a default


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared key of a section."""

    name: str  # the attribute
    annotation: Any
    default: Any  # MISSING when the file must give the key
    declaration: Declaration

    @property
    def key(self) -> str:
        return self.declaration.key or self.name

    @property
    def required(self) -> bool:
        return self.default is MISSING or self.declaration.required

    @property
    def help(self) -> str:
        return self.declaration.help

    @property
    def env(self) -> str | None:
        return self.declaration.env


def setting(default: Any = MISSING, *, help: str, env: str | None = None,
            validate: Callable[[Any], Any] | None = None, key: str | None = None,
            then: Callable[[Any], Any] | None = None, field: Callable[..., Any] | None = None,
            required: bool = False, repr: bool = True) -> Any:
    """Declare a key of the file; without a default the file must give it."""
    metadata = {DECLARATION: Declaration(help, env, validate, key, then, field, required)}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), repr=repr, metadata=metadata)
    return dataclasses.field(default=default, repr=repr, metadata=metadata)


def section(cls: type, *, help: str) -> Any:
    """Declare a nested section, whose keys have defaults of their own."""
    return dataclasses.field(default_factory=cls, metadata={DECLARATION: Declaration(help)})


def declared_settings(cls: type) -> tuple[Setting, ...]:
    """Return the keys a section declares, in the order of its fields."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(Setting(f.name, hints[f.name], _default_of(f), f.metadata[DECLARATION])
                 for f in dataclasses.fields(cls) if DECLARATION in f.metadata)


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return MISSING


def tag_of(cls: type) -> tuple[str, str] | None:
    """Return the key and value that pick this kind of entry in a list of several kinds, if any.

    A section declares it as ``TAG: ClassVar[tuple[str, str]] = ("type", "ollama")``.
    """
    return getattr(cls, "TAG", None)


def is_section(annotation: Any) -> bool:
    """Say whether an annotation is a section (or an entry) with declared keys of its own."""
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def without_extras(annotation: Any) -> tuple[Any, list[Callable[[Any], Any]]]:
    """Split ``Annotated[T, check, ...]`` and ``T | None`` into ``T`` and the checks."""
    checks: list[Callable[[Any], Any]] = []
    if typing.get_origin(annotation) is Annotated:
        checks = list(annotation.__metadata__)
        annotation = annotation.__origin__
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(kept) == 1:
            inner, more = without_extras(kept[0])
            return inner, checks + more
    return annotation, checks


def entry_types(annotation: Any) -> tuple[type, ...]:
    """Return the sections a list or mapping setting holds (``A | B`` gives both), else ()."""
    annotation, _ = without_extras(annotation)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple:
        item = args[0]
    elif typing.get_origin(annotation) is dict:
        item = args[1]
    else:
        return ()
    item, _ = without_extras(item)
    members = typing.get_args(item) if typing.get_origin(item) in (typing.Union, types.UnionType) else (item,)
    return tuple(member for member in members if is_section(member))
