"""Send a statement the store runs for every request as the driver's own SQL: compiled by SQLAlchemy once.

A budgeted request reads what its budgets spent and adds its charge as it ends.
Through a SQLAlchemy ``Connection`` each statement pays SQLAlchemy's work of
every execution (a connection object, its parameters built, an execution
context, its result described): about two thirds of the statement's cost with
SQLite. Here the statement is compiled once for the database's dialect: its
SQL text, the order its driver takes the parameters in, and each parameter's
conversion (the dialect's, and the column type's own, such as
``UtcDateTime``). Each execution only converts the values and sends them on a
connection of the engine's pool (``driver_connection``). The pool still checks
a connection before lending it and rolls it back when it returns; the driver's
errors leave as SQLAlchemy's, so the store maps them as it maps every other.
Rows come back as the driver gives them, unconverted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from ollama_proxy.store.engine import connection_lost


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled for one dialect, as its driver takes it."""

    sql: str
    convert: dict[str, Callable[[Any], Any] | None]  # each parameter's conversion to what the driver sends
    fixed: dict[str, Any]  # the values the statement carries itself (``kind == "key"``), converted
    order: Callable[[dict], tuple] | None  # SQLite's driver takes a tuple (``?``), in order; psycopg a mapping

    def converted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What the driver is sent for ``values`` (bound parameter name -> value), by name."""
        return {**self.fixed, **{name: values[name] if convert is None else convert(values[name])
                                 for name, convert in self.convert.items()}}

    def rows(self, connection, converted: dict[str, Any]) -> list[tuple]:
        """Run the statement on a ``driver_connection`` with ``converted`` values; return its rows."""
        cursor = connection.cursor()
        try:
            cursor.execute(self.sql, self._sent(converted))
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def run_each(self, connection, converted: list[dict[str, Any]]) -> None:
        """Run the statement once for each of ``converted`` (the driver's executemany), in one go."""
        cursor = connection.cursor()
        try:
            cursor.executemany(self.sql, [self._sent(each) for each in converted])
        finally:
            cursor.close()

    def _sent(self, converted: dict[str, Any]) -> tuple | dict:
        return converted if self.order is None else self.order(converted)


def for_driver(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    """Compile ``statement`` for ``dialect``: a ``bindparam`` without a value is given at each execution, by name."""
    compiled = statement.compile(dialect=dialect)
    if compiled.escaped_bind_names:
        raise ValueError("a bound parameter's name needs escaping: name it plainly")
    convert, fixed = {}, {}
    for parameter, name in compiled.bind_names.items():
        processor = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if parameter.required:
            convert[name] = processor
        else:
            fixed[name] = parameter.effective_value if processor is None else processor(parameter.effective_value)
    order = _in_order(compiled.positiontup) if compiled.positional else None
    return DriverStatement(compiled.string, convert, fixed, order)


@contextmanager
def driver_connection(engine: Engine) -> Iterator[Any]:
    """Lend a connection of ``engine``'s pool, as its driver's; the driver's errors leave as SQLAlchemy's.

    What is not committed is rolled back as the connection returns. One the error
    says is broken (the database went away) is dropped from the pool, not lent again.
    """
    connection = None
    try:
        connection = engine.raw_connection()  # opening one may fail too (no database file, no server)
        yield connection
    except engine.dialect.loaded_dbapi.Error as exc:
        broken = connection is not None and (engine.dialect.is_disconnect(exc, connection.dbapi_connection, None)
                                             or connection_lost(exc, engine.dialect.loaded_dbapi))
        if broken:
            connection.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, engine.dialect.loaded_dbapi.Error,
                                  connection_invalidated=broken, dialect=engine.dialect) from exc
    finally:
        if connection is not None:
            connection.close()


def _in_order(names: list[str]) -> Callable[[dict], tuple]:
    """Pick ``names`` out of a mapping, in order, as a tuple (``itemgetter`` gives a lone name's value bare)."""
    if len(names) < 2:
        return lambda values: tuple(values[name] for name in names)
    return itemgetter(*names)
