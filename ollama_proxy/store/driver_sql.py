"""Send a statement the store runs for every request as the driver's own SQL: compiled by SQLAlchemy once.

A budgeted request reads what its budgets spent and adds its charge as it ends.
Through ``Connection.execute`` each statement pays SQLAlchemy's work of every
execution (its parameters built, an execution context, its rows processed),
about two thirds of the statement's cost with SQLite. Here the statement is
compiled once for the database's dialect: its SQL text, the order its driver
takes the parameters in, and each parameter's conversion (the dialect's, and
the column type's own, such as ``UtcDateTime``). Each execution only converts
the values and sends them (``Connection.exec_driver_sql``): SQLAlchemy still
owns the connection, the transaction and the errors. Rows come back as the
driver gives them, unconverted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled for one dialect, as its driver takes it."""

    sql: str
    convert: dict[str, Callable[[Any], Any] | None]  # each parameter's conversion to what the driver sends
    fixed: dict[str, Any]  # the values the statement carries itself (``kind == "key"``), converted
    order: tuple[str, ...] | None  # SQLite's driver takes a tuple (``?``) in this order; psycopg a mapping

    def converted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What the driver is sent for ``values`` (bound parameter name -> value), by name."""
        return {**self.fixed, **{name: values[name] if convert is None else convert(values[name])
                                 for name, convert in self.convert.items()}}

    def execute(self, connection: Connection, converted: dict[str, Any] | list[dict[str, Any]]):
        """Run the statement with ``converted`` values, or with each of a list of them (the driver's executemany)."""
        if isinstance(converted, dict):
            return connection.exec_driver_sql(self.sql, self._sent(converted))
        return connection.exec_driver_sql(self.sql, [self._sent(each) for each in converted])

    def _sent(self, converted: dict[str, Any]) -> tuple | dict:
        return converted if self.order is None else tuple(converted[name] for name in self.order)


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
    order = tuple(compiled.positiontup) if compiled.positional else None
    return DriverStatement(compiled.string, convert, fixed, order)
