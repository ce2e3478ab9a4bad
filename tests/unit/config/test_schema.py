from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import pytest
from marshmallow import ValidationError, fields, validate

from ollama_proxy.config.checks import AT_LEAST_1, NON_EMPTY, HttpUrl, NonEmpty
from ollama_proxy.config.declare import declared_settings, section, setting
from ollama_proxy.config.schema import FrozenList, field_for, schema_for, unknown_field


@dataclass(frozen=True)
class Entry:
    TAG: ClassVar[tuple[str, str]] = ("type", "entry")

    name: str = setting(validate=NON_EMPTY, help="required")
    size: int | None = setting(None, validate=AT_LEAST_1, help="may be null")


@dataclass(frozen=True)
class Part:
    level: str = setting("low", validate=validate.OneOf(["low", "high"]), then=str.upper, help="turned upper")


@dataclass(frozen=True)
class Whole:
    flag: bool = setting(False, help="a boolean")
    count: int = setting(1, validate=AT_LEAST_1, help="an integer")
    ratio: float = setting(0.5, help="a number")
    url: HttpUrl = setting("http://h:1", help="a URL")
    names: tuple[NonEmpty, ...] = setting((), help="a list")
    table: dict[NonEmpty, int] = setting({}, help="a mapping")
    anything: dict[str, Any] = setting({}, help="any values")
    entries: dict[str, Entry] = setting({}, help="nested entries")
    part: Part = section(Part, help="a section")
    secret: str = setting("", key="token", help="renamed")
    plain: str = "no key"


def _field(name: str) -> fields.Field:
    return field_for(next(key for key in declared_settings(Whole) if key.name == name))


@pytest.mark.parametrize("name, kind", [
    ("flag", fields.Boolean), ("count", fields.Integer), ("ratio", fields.Float), ("url", fields.Url),
    ("names", FrozenList), ("table", fields.Dict), ("anything", fields.Dict), ("part", fields.Nested),
    ("secret", fields.String),
])
def test_the_annotation_picks_the_field(name, kind):
    assert type(_field(name)) is kind


def test_an_integer_setting_refuses_a_float_and_a_url_only_http():
    assert _field("count").strict
    with pytest.raises(ValidationError, match="Not a valid URL"):
        schema_for(Whole)().load({"url": "ftp://h/x"})
    with pytest.raises(ValidationError, match="Not a valid URL"):
        schema_for(Whole)().load({"url": 5})


def test_a_section_loads_its_declared_defaults_finished():
    whole = schema_for(Whole)().load({})
    assert whole == Whole(part=Part(level="LOW"))
    assert isinstance(whole.names, tuple)


def test_a_section_loads_what_the_file_says():
    whole = schema_for(Whole)().load({
        "flag": True, "count": 3, "names": ["a", "b"], "table": {"k": 2}, "anything": {"x": [1]},
        "entries": {"e": {"type": "entry", "name": "n", "size": None}}, "part": {"level": "high"}, "token": "t"})
    assert whole.names == ("a", "b") and whole.table == {"k": 2} and whole.anything == {"x": [1]}
    assert whole.entries == {"e": Entry("n", None)}
    assert (whole.part.level, whole.secret, whole.plain) == ("HIGH", "t", "no key")


@pytest.mark.parametrize("raw, problem", [
    ({"count": 1.5}, {"count": ["Not a valid integer."]}),
    ({"count": 0}, {"count": ["Must be greater than or equal to 1."]}),
    ({"count": None}, {"count": ["Field may not be null."]}),
    ({"names": [""]}, {"names": {0: ["Shorter than minimum length 1."]}}),
    ({"table": {"": 1}}, {"table": {"": {"key": ["Shorter than minimum length 1."]}}}),
    ({"part": {"level": "mid"}}, {"part": {"level": ["Must be one of: low, high."]}}),
    ({"secret": "s"}, {"secret": ["Unknown field."]}),
    ({"cout": 2}, {"cout": ["Unknown field; did you mean 'count'?"]}),
    ({"entries": {"e": {"type": "entry"}}},
     {"entries": {"e": {"value": {"name": ["Missing data for required field."]}}}}),
    ({"entries": {"e": {"type": "other", "name": "n"}}},
     {"entries": {"e": {"value": {"type": ["Must be equal to entry."]}}}}),
    ({"entries": {"e": {"name": "n", "size": 0}}},
     {"entries": {"e": {"value": {"type": ["Missing data for required field."],
                                  "size": ["Must be greater than or equal to 1."]}}}}),
])
def test_a_bad_value_is_refused_naming_its_key(raw, problem):
    with pytest.raises(ValidationError) as caught:
        schema_for(Whole)().load(raw)
    assert caught.value.messages == problem


def test_the_tag_is_a_known_key_but_no_attribute():
    with pytest.raises(ValidationError) as caught:
        schema_for(Entry)().load({"type": "entry", "name": "n", "typ": 1})
    assert caught.value.messages == {"typ": ["Unknown field; did you mean 'type'?"]}
    assert schema_for(Entry)().load({"type": "entry", "name": "n"}) == Entry("n")


def test_the_schema_of_a_section_is_made_once():
    assert schema_for(Whole) is schema_for(Whole)


def test_a_type_with_no_field_must_name_one():
    @dataclass(frozen=True)
    class Odd:
        when: Annotated[complex, NON_EMPTY] = setting(0j, help="no field for complex numbers")

    with pytest.raises(TypeError, match="declare the setting with field="):
        schema_for(Odd)


@pytest.mark.parametrize("key, known, message", [
    ("servce", ["service", "store"], "Unknown field; did you mean 'service'?"),
    ("zzz", ["service"], "Unknown field."),
])
def test_unknown_field_names_the_nearest_key(key, known, message):
    assert unknown_field(key, known) == message
