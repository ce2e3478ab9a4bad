"""The checks and value types that many settings share."""

from __future__ import annotations

import re
from typing import Annotated, NewType

from marshmallow import ValidationError, validate

MiB = 1024 * 1024

SECONDS = validate.Range(min=0, min_inclusive=False)  # a duration that cannot be zero
AT_LEAST_0 = validate.Range(min=0)
AT_LEAST_1 = validate.Range(min=1)
NON_EMPTY = validate.Length(min=1)
_SQLITE_WITHOUT_PATH = re.compile(r"sqlite(\+\w+)?://(?!/)", re.IGNORECASE)


def _sqlite_names_a_file(url: str) -> None:
    """A SQLite URL names its file after a third slash; ``sqlite://x.db`` names a host and no file (SQLAlchemy then
    keeps the database in each process's memory, the rate limiter would read ``.db``)."""
    if _SQLITE_WITHOUT_PATH.match(url):
        raise ValidationError("a SQLite URL names its file after three slashes: sqlite:///relative/path.db or "
                              "sqlite:////absolute/path.db")


DATABASE_URL = validate.And(NON_EMPTY, _sqlite_names_a_file)

HttpUrl = NewType("HttpUrl", str)  # an http(s) URL; a host needs no top-level domain
NonEmpty = Annotated[str, NON_EMPTY]  # an item of a list, or a key of a mapping, that says something
