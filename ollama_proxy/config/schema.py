"""Derive the marshmallow schema that checks a section from the section's declarations.

The annotation picks the field: ``bool``, ``int`` (a float is refused), ``float``,
``str``, ``HttpUrl``, ``tuple[T, ...]`` (a list in the file), ``dict[K, V]`` and
sections, which nest. ``T | None`` lets the file say null; ``Annotated[T, check]``
checks each T, which is how the items of a list and the keys of a mapping are
checked. A setting's ``validate`` checks its value, ``then`` turns the checked value
into the one the app reads, and ``field`` makes a field of its own where a type
cannot say enough. A section with a ``TAG`` also requires the tag's key to hold the
tag's value, and drops it when the section is built.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate

from ollama_proxy.config.checks import HttpUrl
from ollama_proxy.config.declare import Setting, declared_settings, is_section, tag_of, without_extras


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key must stop the start, not be ignored

    @pre_load
    def refuse_unknown_keys(self, data, **kwargs):
        """Refuse keys this section does not know, suggesting the nearest one it does."""
        if isinstance(data, dict):
            known = [field.data_key or name for name, field in self.load_fields.items()]
            unknown = {key: [unknown_field(key, known)] for key in data if key not in known}
            if unknown:
                raise ValidationError(unknown)
        return data


def unknown_field(key, known: list[str]) -> str:
    """Say that ``key`` is not a known key, naming the nearest known one if any is close."""
    nearest = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f"Unknown field; did you mean '{nearest[0]}'?" if nearest else "Unknown field."


class FrozenList(fields.List):
    """A list in the file, a tuple in the settings."""

    def _deserialize(self, value, attr, data, **kwargs):
        return tuple(super()._deserialize(value, attr, data, **kwargs))


@functools.cache
def schema_for(cls: type) -> type[StrictSchema]:
    """Return the schema that checks a section and loads it as ``cls``."""
    settings = declared_settings(cls)
    attributes: dict[str, Any] = {setting.name: field_for(setting) for setting in settings}
    tag = tag_of(cls)
    if tag:
        key, value = tag
        attributes = {key: fields.String(required=True, validate=validate.Equal(value)), **attributes}
    attributes["build"] = _builder(cls, settings, tag[0] if tag else None)
    return type(f"{cls.__name__}Schema", (StrictSchema,), attributes)


def _builder(cls: type, settings: tuple[Setting, ...], tag_key: str | None):
    @post_load
    def build(self, data, **kwargs):
        data.pop(tag_key, None)
        return cls(**{setting.name: _finished(setting, data[setting.name]) for setting in settings})
    return build


def _finished(setting: Setting, value: Any) -> Any:
    then = setting.declaration.then
    return then(value) if then is not None and value is not None else value


def field_for(setting: Setting) -> fields.Field:
    """Return the marshmallow field of one declared key."""
    declaration = setting.declaration
    annotation, checks = without_extras(setting.annotation)
    options: dict[str, Any] = {
        "validate": checks + ([declaration.validate] if declaration.validate else []),
        "allow_none": admits_none(setting.annotation),
        "metadata": {"help": declaration.help},
    }
    if declaration.key:
        options["data_key"] = declaration.key
    if setting.required:
        options["required"] = True
    else:
        options["load_default"] = _load_default(annotation, setting.default)
    if declaration.field is not None:
        return declaration.field(**options)
    return _field_of(annotation, **options)


def admits_none(annotation: Any) -> bool:
    """Say whether the file may give null: only where the type is ``T | None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = annotation.__origin__
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and type(None) in typing.get_args(annotation)


def _load_default(annotation: Any, default: Any) -> Any:
    if is_section(annotation):
        return lambda: schema_for(annotation)().load({})  # checked and finished, as a section the file gives
    if isinstance(default, dict):
        return lambda: dict(default)
    return default


SCALARS: dict[Any, Any] = {
    bool: fields.Boolean,
    int: functools.partial(fields.Integer, strict=True),
    float: fields.Float,
    str: fields.String,
    HttpUrl: functools.partial(fields.Url, require_tld=False, schemes={"http", "https"}),
}


def _field_of(annotation: Any, **options: Any) -> fields.Field:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in SCALARS:
        return SCALARS[annotation](**options)
    if origin is tuple:
        return FrozenList(_item_field(args[0]), **options)
    if origin is dict:
        values = None if args[1] is Any else _item_field(args[1])  # None: any value
        return fields.Dict(keys=_item_field(args[0]), values=values, **options)
    if is_section(annotation):
        return fields.Nested(schema_for(annotation), **options)
    raise TypeError(f"no field is derived for {annotation!r}: declare the setting with field=")


def _item_field(annotation: Any) -> fields.Field:
    annotation, checks = without_extras(annotation)
    return _field_of(annotation, validate=checks)
