"""A statement compiled once for the driver runs as SQLAlchemy would run it, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select

from ollama_proxy.store import DatabaseError
from ollama_proxy.store.driver_sql import driver_connection, for_driver
from ollama_proxy.store.errors import database_errors
from ollama_proxy.store.schema import budget_spend

MOMENT = datetime(2026, 11, 26, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # an aware moment not in UTC
ROW = {"holder_kind": "key", "holder": "alice", "period": "day", "unit": "tokens", "period_start": MOMENT,
       "spent": 12.5, "refusals": 0}


def _bound(column):
    return bindparam(column.name, type_=column.type)


def test_values_are_converted_as_sqlalchemy_converts_them_and_rows_come_back_as_sent(store):
    adding = for_driver(insert(budget_spend).values({name: _bound(budget_spend.c[name]) for name in ROW}),
                        store.engine.dialect)
    reading = for_driver(select(budget_spend.c.period_start, budget_spend.c.spent).where(
        budget_spend.c.holder == _bound(budget_spend.c.holder), budget_spend.c.holder_kind == "key",
        budget_spend.c.period_start == _bound(budget_spend.c.period_start)), store.engine.dialect)
    with driver_connection(store.engine) as connection:
        adding.run_each(connection, [adding.converted(ROW), adding.converted({**ROW, "holder": "bob", "spent": 3.0})])
        connection.commit()
    sent = reading.converted({"holder": "alice", "period_start": MOMENT})
    with driver_connection(store.engine) as connection:
        raw = reading.rows(connection, sent)
    with store.engine.connect() as connection:  # what SQLAlchemy itself reads back: the moment stored as UTC
        through_sqlalchemy = connection.execute(select(budget_spend.c.holder, budget_spend.c.period_start,
                                                       budget_spend.c.spent).order_by(budget_spend.c.holder)).all()
    assert [tuple(row) for row in through_sqlalchemy] == [("alice", MOMENT, 12.5), ("bob", MOMENT, 3.0)]
    assert through_sqlalchemy[0].period_start.tzinfo == timezone.utc
    assert [tuple(row) for row in raw] == [(sent["period_start"], 12.5)]  # the driver's value, as it was sent
    assert not isinstance(sent["period_start"], datetime) or sent["period_start"].tzinfo is None  # naive UTC


def test_a_value_the_statement_carries_is_sent_with_those_given(store):
    with store.engine.begin() as connection:
        connection.execute(insert(budget_spend), [{**ROW, "holder_kind": kind} for kind in ("key", "team")])
    named = budget_spend.c.holder == _bound(budget_spend.c.holder)
    reading = for_driver(select(budget_spend.c.holder_kind).where(budget_spend.c.holder_kind == "team", named),
                         store.engine.dialect)
    with driver_connection(store.engine) as connection:
        assert reading.rows(connection, reading.converted({"holder": "alice"})) == [("team",)]


def test_what_is_not_committed_is_rolled_back_and_the_drivers_errors_are_the_stores(store):
    adding = for_driver(insert(budget_spend).values({name: _bound(budget_spend.c[name]) for name in ROW}),
                        store.engine.dialect)
    with driver_connection(store.engine) as connection:
        adding.run_each(connection, [adding.converted(ROW)])  # never committed
    with pytest.raises(DatabaseError, match="(?i)unique|duplicate"):
        with database_errors(), driver_connection(store.engine) as connection:
            adding.run_each(connection, [adding.converted(ROW), adding.converted(ROW)])
    with store.engine.connect() as connection:
        assert connection.execute(select(budget_spend.c.holder)).all() == []
