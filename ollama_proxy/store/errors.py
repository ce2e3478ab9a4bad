"""Name what can go wrong in the store; map the database's own failures where the store ends.

``StoreError`` and its kin: a request the store cannot carry out (a name
taken, none such, a value checked before it reached the database).
``DatabaseError``: the database failed (it cannot be reached, is locked, lacks
a table); ``ValueRefused``, one of those, it refused a value the store let by,
which no retry helps. SQLAlchemy's exceptions become these around every method
of the store and its opening (``maps_database_errors``), so no room outside the
store imports SQLAlchemy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa

_P = ParamSpec("_P")
_R = TypeVar("_R")


class StoreError(Exception):
    """A request to the store cannot be carried out; the message says why."""


class Conflict(StoreError):
    """The name is already taken."""


class Missing(StoreError):
    """No such key, alias or override."""


class DatabaseError(Exception):
    """The database failed a request. ``str()`` is SQLAlchemy's message; ``reason`` says it in one short line."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class ValueRefused(DatabaseError):
    """The database refused a value it was sent (too long, out of range, against a constraint)."""


class MayHaveLanded(DatabaseError):
    """The connection was lost as a transaction committed: what it wrote may have landed, so it is not sent again."""


def mapped(error: sa.SQLAlchemyError) -> DatabaseError:
    """Return the store's error for one of SQLAlchemy's."""
    kind = ValueRefused if _refused_value(error) else DatabaseError
    return kind(str(error), short_reason(error))


def _refused_value(error: sa.SQLAlchemyError) -> bool:
    if isinstance(error, (sa.DataError, sa.IntegrityError)):
        return True
    # Raised before the database saw the row: a column type refused its value.
    return isinstance(error, sa.StatementError) and not isinstance(error, sa.DBAPIError)


def short_reason(error: BaseException) -> str:
    """Say why a request failed in one short line, without the statement and its parameters."""
    cause = getattr(error, "orig", None) or error  # the driver's own error, under SQLAlchemy's
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0][:200]}"


@contextmanager
def database_errors() -> Iterator[None]:
    """Raise what SQLAlchemy raises inside as the store's ``DatabaseError``."""
    try:
        yield
    except sa.SQLAlchemyError as exc:
        raise mapped(exc) from exc


def maps_database_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap a method of the store so that SQLAlchemy's errors leave it as ``DatabaseError``."""
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with database_errors():
            return method(*args, **kwargs)
    return wrapper
