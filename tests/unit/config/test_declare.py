import dataclasses
from dataclasses import MISSING, dataclass
from typing import Annotated, Any, ClassVar

import pytest

from ollama_proxy.config.declare import (
    declared_settings,
    entry_types,
    is_section,
    section,
    setting,
    tag_of,
    without_extras,
)


def _positive(value):
    return value > 0


@dataclass(frozen=True)
class Inner:
    TAG: ClassVar[tuple[str, str]] = ("kind", "inner")

    size: int = setting(3, help="how big")


@dataclass(frozen=True)
class Other:
    note: str = setting("", help="a note")


@dataclass(frozen=True)
class Example:
    name: str = setting(help="required: no default")
    timeout: float = setting(5.0, validate=_positive, env="EXAMPLE_TIMEOUT", help="seconds")
    secret: str = setting("", key="token", required=True, repr=False, help="renamed in the file")
    table: dict[str, Any] = setting({}, help="a mapping")
    inner: Inner = section(Inner, help="a nested section")
    computed: str = "not a key"


def test_a_setting_is_a_dataclass_field_with_its_default():
    example = Example(name="n")
    assert (example.timeout, example.secret, example.table, example.inner) == (5.0, "", {}, Inner())
    with pytest.raises(TypeError):
        Example()  # no default: the caller must give it


def test_a_mutable_default_is_fresh_for_each_instance():
    first, second = Example(name="a"), Example(name="b")
    first.table["x"] = 1
    assert second.table == {}


def test_repr_false_keeps_a_secret_out_of_the_repr():
    assert "s3cret" not in repr(Example(name="n", secret="s3cret"))


def test_declared_settings_lists_the_keys_in_field_order_and_skips_plain_fields():
    keys = declared_settings(Example)
    assert [k.name for k in keys] == ["name", "timeout", "secret", "table", "inner"]
    name, timeout, secret, table, inner = keys
    assert (name.default, name.required) == (MISSING, True)
    assert (timeout.key, timeout.default, timeout.env, timeout.help, timeout.required) == (
        "timeout", 5.0, "EXAMPLE_TIMEOUT", "seconds", False)
    assert timeout.declaration.validate is _positive
    assert (secret.name, secret.key, secret.required) == ("secret", "token", True)
    assert (table.annotation, table.default) == (dict[str, Any], {})
    assert (inner.annotation, inner.default, inner.help) == (Inner, Inner(), "a nested section")


def test_declared_settings_of_a_section_without_settings_is_empty():
    @dataclass
    class Plain:
        x: int = 1

    assert declared_settings(Plain) == ()


@pytest.mark.parametrize("annotation, expected", [
    (int, (int, [])),
    (int | None, (int, [])),
    (Annotated[str, _positive], (str, [_positive])),
    (Annotated[str, _positive] | None, (str, [_positive])),
    (tuple[str, ...], (tuple[str, ...], [])),
    (Inner | Other, (Inner | Other, [])),
])
def test_without_extras_strips_none_and_annotated_checks(annotation, expected):
    assert without_extras(annotation) == expected


@pytest.mark.parametrize("annotation, expected", [
    (tuple[Inner, ...], (Inner,)),
    (tuple[Inner | Other, ...], (Inner, Other)),
    (dict[str, Inner], (Inner,)),
    (dict[Annotated[str, _positive], Other] | None, (Other,)),
    (tuple[str, ...], ()),
    (dict[str, Any], ()),
    (Inner, ()),
    (int, ()),
])
def test_entry_types_are_the_sections_a_list_or_mapping_holds(annotation, expected):
    assert entry_types(annotation) == expected


def test_a_section_is_a_dataclass_type_and_may_carry_a_tag():
    assert is_section(Inner) and not is_section(Inner()) and not is_section(dict)
    assert (tag_of(Inner), tag_of(Other)) == (("kind", "inner"), None)
    assert "TAG" not in [f.name for f in dataclasses.fields(Inner)]
