"""The checks and value types that many settings share."""

from __future__ import annotations

from typing import Annotated, NewType

from marshmallow import validate

MiB = 1024 * 1024

SECONDS = validate.Range(min=0, min_inclusive=False)  # a duration that cannot be zero
AT_LEAST_0 = validate.Range(min=0)
AT_LEAST_1 = validate.Range(min=1)
NON_EMPTY = validate.Length(min=1)

HttpUrl = NewType("HttpUrl", str)  # an http(s) URL; a host needs no top-level domain
NonEmpty = Annotated[str, NON_EMPTY]  # an item of a list, or a key of a mapping, that says something
