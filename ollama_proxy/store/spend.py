"""Count what each budget's holder spent in each period: charges, shadow refusals, and the leases workers hold.

What a holder spent in a period is one row (``budget_spend``), added to in one
statement as each request ends (the database adds: no update is lost between
workers). A request is charged once, from its record, with the counts of the
answer its client got. A charge to a key or team is added only while the name is
still the id's the request was checked as (``budgets``: a budget holds its holder).
Far from a budget's end a worker admits against a lease (``budget_leases``) taken
here with the charges of the requests it admitted on the last one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from sqlalchemy import Dialect, Engine, and_, bindparam, delete, false, func, insert, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Boolean, Integer

from ollama_proxy.store.budgets import Budget
from ollama_proxy.store.driver_sql import DriverStatement, driver_connection, for_driver
from ollama_proxy.store.errors import MayHaveLanded, maps_database_errors, short_reason
from ollama_proxy.store.schema import api_keys, budget_leases, budget_spend, teams

# What names a holder's spending in one period: the columns of budget_spend's unique constraint.
_PERIOD_ROW = ("holder_kind", "holder", "period", "unit", "period_start")


class SpendStore:
    """The budget_spend and budget_leases tables; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def spent(self, slots: list[tuple[tuple[str, str, str, str], datetime]], now: datetime | None = None
              ) -> dict[tuple, tuple[float, int, float]]:
        """What each (slot, period start) spent so far, the refusals a shadow budget counted, and what workers
        hold leased of it at ``now`` (``renew_leases``): (0.0, 0, 0.0) if none."""
        found = dict.fromkeys(slots, (0.0, 0, 0.0))
        if not slots:
            return found
        statement = _spent_of(len(found), self.engine.dialect)
        sent = statement.converted({"now": now or datetime.now(timezone.utc),
                                    **{f"{name}_{number}": value for number, (slot, start) in enumerate(found)
                                       for name, value in zip(_PERIOD_ROW, (*slot, start), strict=True)}})
        # A row comes back as the driver gives it: it is told by the values it was asked with, as they were sent.
        asked = {tuple(sent[f"{name}_{number}"] for name in _PERIOD_ROW): period for number, period in enumerate(found)}
        with driver_connection(self.engine) as connection:
            for *period, spent, refusals, leased in statement.rows(connection, sent):
                found[asked[tuple(period)]] = (spent, refusals, float(leased))
        return found

    @maps_database_errors
    def renew_leases(self, lessee: str, charges: list[tuple[list[tuple[tuple[str, str, str, str], datetime, float]],
                                                            Mapping[tuple[str, str], int | None]]],
                     wanted: list[tuple[Budget, datetime]], size: Callable[[Budget, float, float], float],
                     now: datetime, until: datetime) -> dict[tuple, tuple[float, float, float]]:
        """In one transaction: add ``charges`` (as ``charge_together``: what the requests ``lessee`` admitted on its
        leases spent), give back every lease ``lessee`` held (and drop those lapsed), and lease it each of
        ``wanted`` (budget, period start) again until ``until``: ``size(budget, spent, leased by others)`` of it.

        Each holder's row is locked first, in one order, so two workers never lease the same room. Return each
        wanted (slot, period start)'s (spent, leased by others, leased now)."""
        rows = _charge_rows(charges)
        periods = sorted({(budget.slot, start) for budget, start in wanted} | {
            (tuple(row[name] for name in _PERIOD_ROW[:4]), row["period_start"]) for row in rows})
        committing = False
        try:
            with self.engine.connect() as connection:
                found = _lease(connection, lessee, rows, periods, wanted, size, now, until)
                committing = True
                connection.commit()
        except DBAPIError as exc:
            if committing:
                raise MayHaveLanded(str(exc), short_reason(exc)) from exc
            raise
        return found

    @maps_database_errors
    def charge(self, charges: list[tuple[tuple[str, str, str, str], datetime, float]],
               ids: Mapping[tuple[str, str], int | None] | None = None) -> None:
        """Add one request's spending to its holders' periods, in one statement.

        ``ids``: the id each (holder kind, name) had when the request was checked. A charge to a key or team whose
        name another holds now (deleted and made again meanwhile) is dropped: the new one did not spend it.
        """
        self.charge_together([(charges, ids or {})])

    @maps_database_errors
    def charge_together(self, requests: list[tuple[list[tuple[tuple[str, str, str, str], datetime, float]],
                                                   Mapping[tuple[str, str], int | None]]]) -> None:
        """``charge`` several requests' spending, (charges, ids) each, in one transaction and one statement."""
        rows = _charge_rows(requests)
        if not rows:
            return
        statement = _charge(self.engine.dialect)
        converted = [statement.converted(row) for row in rows]
        for last in (False, True):
            committing = False
            try:
                with driver_connection(self.engine) as connection:
                    statement.run_each(connection, converted)
                    committing = True  # a connection lost from here on may have committed: not sent again
                    connection.commit()
                return
            except DBAPIError as exc:
                # Its connection lost before the commit was sent, nothing landed: it is sent once more, on a new one.
                if last or committing or not exc.connection_invalidated:
                    raise

    @maps_database_errors
    def note_refusal(self, slot: tuple[str, str, str, str], start: datetime) -> None:
        """Count a request a shadow budget would have refused, in the holder's period."""
        with self.engine.begin() as connection:
            _add(connection, [(slot, start, 0.0, 1)])


_PERIOD_KEYS = tuple(budget_spend.c[name] for name in _PERIOD_ROW)


@functools.lru_cache(maxsize=64)
def _spent_of(count: int, dialect: Dialect) -> DriverStatement:
    """What ``count`` holders' periods spent (``spent``): one statement for each count, compiled once for the
    driver, its values bound by name (``holder_kind_0`` …): it runs for every budgeted request."""
    periods = [tuple_(*(bindparam(f"{column.name}_{number}", type_=column.type) for column in _PERIOD_KEYS))
               for number in range(count)]
    leased = (select(func.coalesce(func.sum(budget_leases.c.amount), 0.0))
              .where(*(budget_leases.c[name] == budget_spend.c[name] for name in _PERIOD_ROW),
                     budget_leases.c.expires_at > bindparam("now", type_=budget_leases.c.expires_at.type))
              .scalar_subquery())
    return for_driver(select(*_PERIOD_KEYS, budget_spend.c.spent, budget_spend.c.refusals, leased).where(
        tuple_(*_PERIOD_KEYS).in_(periods)), dialect)


def _lease(connection, lessee: str, rows: list[dict], periods: list[tuple], wanted: list[tuple[Budget, datetime]],
           size: Callable[[Budget, float, float], float], now: datetime, until: datetime
           ) -> dict[tuple, tuple[float, float, float]]:
    """``SpendStore.renew_leases``'s statements, on ``connection``, in its transaction."""
    found: dict[tuple, tuple[float, float, float]] = {}
    if periods:
        _add(connection, [(slot, start, 0.0, 0) for slot, start in periods])
    if rows:
        connection.execute(_charge_statement(connection.dialect.name), rows)
    connection.execute(delete(budget_leases).where(
        or_(budget_leases.c.lessee == lessee, budget_leases.c.expires_at <= now)))
    if not wanted:
        return found
    keys = [(*budget.slot, start) for budget, start in wanted]
    spent = {tuple(row[:5]): row[5] for row in connection.execute(
        select(*_PERIOD_KEYS, budget_spend.c.spent).where(tuple_(*_PERIOD_KEYS).in_(keys)))}
    lease_keys = tuple(budget_leases.c[name] for name in _PERIOD_ROW)
    others = {tuple(row[:5]): row[5] for row in connection.execute(
        select(*lease_keys, func.sum(budget_leases.c.amount)).where(tuple_(*lease_keys).in_(keys))
        .group_by(*lease_keys))}
    leases = []
    for budget, start in wanted:
        key = (*budget.slot, start)
        spent_now, leased = spent.get(key, 0.0), float(others.get(key) or 0.0)
        granted = size(budget, spent_now, leased)
        found[(budget.slot, start)] = (spent_now, leased, granted)
        if granted > 0:
            leases.append({**dict(zip(_PERIOD_ROW, key, strict=True)), "lessee": lessee, "amount": granted,
                           "expires_at": until})
    if leases:
        connection.execute(insert(budget_leases), leases)
    return found


def _period_values(slot: tuple[str, str, str, str], start: datetime, spent: float, refusals: int) -> dict:
    kind, holder, period, unit = slot
    return {"holder_kind": kind, "holder": holder, "period": period, "unit": unit, "period_start": start,
            "spent": spent, "refusals": refusals}


def _add(connection, additions: list[tuple[tuple[str, str, str, str], datetime, float, int]]) -> None:
    """Add (slot, period start, spent, refusals) to each holder's period, making rows that are new (``_upsert``)."""
    connection.execute(_upsert(connection.dialect.name), [_period_values(*addition) for addition in additions])


def _adding(statement):
    """``statement`` (an insert into budget_spend) adding to the row it meets: the database adds, so no update is lost
    between workers or instances."""
    return statement.on_conflict_do_update(
        index_elements=_PERIOD_ROW, set_={"spent": budget_spend.c.spent + statement.excluded.spent,
                                          "refusals": budget_spend.c.refusals + statement.excluded.refusals})


def _insert(dialect_name: str):
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(budget_spend)


@functools.cache
def _upsert(dialect_name: str):
    """The statement that adds to a holder's period, or makes its row (``_add``), for the database's dialect: made
    once, sent with one row of values per addition, so it is compiled once, not for every addition."""
    return _adding(_insert(dialect_name))


def _charge_rows(requests) -> list[dict]:
    """The values of ``_charge_statement`` for each charge of each (charges, ids) of ``requests``: in the order of
    the rows they add to, so that two transactions lock rows in one order and never wait for each other."""
    return [{**_period_values(slot, start, amount, 0), "checked": slot[:2] in ids, "holder_id": ids.get(slot[:2])}
            for slot, start, amount, ids in sorted(((*charge, ids) for charges, ids in requests for charge in charges),
                                                   key=lambda charge: charge[:2])]


@functools.lru_cache(maxsize=8)
def _charge(dialect: Dialect) -> DriverStatement:
    """``_charge_statement`` compiled once for the driver: it runs as every budgeted request ends."""
    return for_driver(_charge_statement(dialect.name), dialect)


@functools.cache
def _charge_statement(dialect_name: str):
    """``_upsert`` for a request's charge.

    A row whose ``checked`` holder (a key or team) no longer has the ``holder_id`` the request was checked with
    (deleted and made again under its name meanwhile) adds nothing, as the new one did not spend it. The holder's
    id is read in the same statement as the row is added."""
    def value(column):
        return bindparam(column.name, type_=column.type)

    def current_id(table):
        return select(table.c.id).where(table.c.name == value(budget_spend.c.holder)).scalar_subquery()

    kind, holder_id = value(budget_spend.c.holder_kind), bindparam("holder_id", type_=Integer)
    still_held = or_(bindparam("checked", type_=Boolean) == false(),
                     and_(kind == "key", current_id(api_keys).is_not_distinct_from(holder_id)),
                     and_(kind == "team", current_id(teams).is_not_distinct_from(holder_id)))
    columns = [*_PERIOD_ROW, "spent", "refusals"]
    rows = select(*(value(budget_spend.c[name]) for name in columns)).where(still_held)
    return _adding(_insert(dialect_name).from_select(columns, rows))
