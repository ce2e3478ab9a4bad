"""Keep budgets (a team's, a key's or a person's, per calendar period) and what each holder spent in each period.

A budget is tokens (prompt plus answer, as Ollama or the provider counts them)
or GPU-seconds (Ollama's ``total_duration``) per day, week (from Monday) or
month, in the proxy's time zone. What a holder spent in a period is one row,
added to in one statement as each request ends (the database adds: no update
is lost between workers). Several instances share the store (PostgreSQL), so
the count is one for all. A request is charged once, from its record, with the
counts of the answer its client got: an attempt the proxy retried or failed
over from ran nothing the answer counts.

A budget of a key or team holds that key or team, not whatever has its name:
it is read with its holder's id (``Budget.holder_id``), it dies with its holder
(``drop_held``), and a charge is added only while the name is still the id's
the request was checked as: a key or team deleted and made again under its name
starts from nothing, even while a request of the old one ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from sqlalchemy import Dialect, Engine, and_, bindparam, delete, false, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Boolean, Integer

from ollama_proxy.store.audit import Actor, write_entry
from ollama_proxy.store.driver_sql import DriverStatement, driver_connection, for_driver
from ollama_proxy.store.errors import MayHaveLanded, Missing, StoreError, maps_database_errors, short_reason
from ollama_proxy.store.schema import api_keys, budget_leases, budget_spend, budgets, teams, utcnow

HOLDERS = ("team", "key", "person")  # a person: every key they own (``api_keys.owner``, their sign-on subject)
HOLDER_LENGTH = 100  # the budgets.holder column
PERIODS = ("day", "week", "month")
UNITS = ("tokens", "gpu_seconds")
# What names a holder's spending in one period: the columns of budget_spend's unique constraint.
_PERIOD_ROW = ("holder_kind", "holder", "period", "unit", "period_start")
MODES = ("hard", "soft", "shadow")


@dataclass(frozen=True)
class Budget:
    """One budget as stored."""

    id: int
    holder_kind: str
    holder: str
    period: str
    unit: str
    amount: float
    mode: str
    created_at: datetime
    holder_id: int | None = None  # the key's or team's row (api_keys.id, teams.id); None: a person's

    @property
    def named(self) -> str:
        """``team 'research'``, ``key 'alice'``, ``person 'mia'``: the holder as messages name it."""
        return f"{self.holder_kind} '{self.holder}'"

    @property
    def slot(self) -> tuple[str, str, str, str]:
        """What the budget counts: its holder's spending in one unit per one kind of period."""
        return self.holder_kind, self.holder, self.period, self.unit


@dataclass(frozen=True)
class Standing:
    """One budget in a period: what was spent of it, what is left, and when the period resets."""

    budget: Budget
    start: datetime
    end: datetime
    spent: float
    refusals: int = 0  # requests a shadow budget would have refused in the period
    leased: float = 0.0  # what workers leased of it and have not charged yet: spent, for admitting a request

    @property
    def left(self) -> float:
        return max(0.0, self.budget.amount - self.spent - self.leased)

    @property
    def share_left(self) -> float:
        return self.left / self.budget.amount if self.budget.amount else 0.0

    @property
    def spent_out(self) -> bool:
        return self.spent + self.leased >= self.budget.amount

    def header(self) -> str:
        left = round(self.left) if self.budget.unit == "tokens" else round(self.left, 1)
        return f"{left:g}; period={self.budget.period}; unit={self.budget.unit}"

    def row(self) -> dict:
        """The standing as the admin page, the usage report and the CLI read it."""
        budget = self.budget
        return {"holder_kind": budget.holder_kind, "holder": budget.holder, "period": budget.period,
                "unit": budget.unit, "amount": budget.amount, "mode": budget.mode, "spent": self.spent,
                "left": max(0.0, budget.amount - self.spent), "leased": self.leased, "refusals": self.refusals,
                "period_start": self.start.isoformat(), "resets": self.end.isoformat()}


def period_bounds(period: str, now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The start and end (UTC) of the calendar ``period`` in ``zone`` that holds the moment ``now``."""
    local = now.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # Midnight as the zone has it on that date (a daylight-saving change moves the offset, not the wall clock).
    start, end = (moment.replace(tzinfo=None).replace(tzinfo=zone) for moment in (start, end))
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def standings_in(periods: list[tuple[Budget, datetime, datetime]], spent: Mapping[tuple, tuple[float, int, float]]
                 ) -> list[Standing]:
    """Each (budget, period start, period end) of ``periods`` with what was spent and leased of it
    (``BudgetStore.spent``)."""
    return [Standing(budget, start, end, *spent[(budget.slot, start)]) for budget, start, end in periods]


def _row_to_budget(row, holder_id: int | None = None) -> Budget:
    """A budget of its row; the holder's id from the row where it was read with it (``list_budgets``)."""
    values = row._mapping
    return Budget(**{name: values[name] for name in Budget.__dataclass_fields__ if name != "holder_id"},
                  holder_id=values.get("holder_id", holder_id))


def _checked(holder_kind: str, period: str | None, unit: str | None, mode: str | None = None) -> None:
    for value, allowed, what in ((holder_kind, HOLDERS, "a holder"), (period, PERIODS, "a period"),
                                 (unit, UNITS, "a unit"), (mode, MODES, "a mode")):
        if value is not None and value not in allowed:
            raise StoreError(f"{what} is one of {', '.join(allowed)}, not {value!r}")


class BudgetStore:
    """The budgets, budget_spend and budget_charges tables; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def set_budget(self, holder_kind: str, holder: str, *, period: str, unit: str, amount: float, mode: str = "hard",
                   by: Actor) -> Budget:
        """Give a team, a key or a person a budget for ``period`` in ``unit``, replacing the one it had for them.

        A person's budget outlives their keys (one made later is held to it too): it goes with ``clear_budgets``.
        """
        _checked(holder_kind, period, unit, mode)
        if not isinstance(holder, str) or not 0 < len(holder) <= HOLDER_LENGTH:
            raise StoreError(f"a budget's holder is named in 1 to {HOLDER_LENGTH} characters")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount >= 0:
            raise StoreError("a budget's amount is a number, 0 or more")
        with self.engine.begin() as connection:
            holder_id = _holder_exists(connection, holder_kind, holder)
            where = and_(*(column == value for column, value in zip(
                (budgets.c.holder_kind, budgets.c.holder, budgets.c.period, budgets.c.unit),
                (holder_kind, holder, period, unit), strict=True)))
            before = connection.execute(select(budgets.c.amount, budgets.c.mode).where(where)).first()
            values = {"amount": float(amount), "mode": mode}
            if before is None:
                connection.execute(insert(budgets).values(holder_kind=holder_kind, holder=holder, period=period,
                                                          unit=unit, created_at=utcnow(), **values))
            else:
                connection.execute(update(budgets).where(where).values(**values))
            described = {"period": period, "unit": unit}
            write_entry(connection, by, "budget.set", f"{holder_kind} {holder}",
                        None if before is None else {**described, **before._asdict()}, {**described, **values})
            return _row_to_budget(connection.execute(select(budgets).where(where)).one(), holder_id)

    @maps_database_errors
    def list_budgets(self) -> list[Budget]:
        """Every budget, each with its key's or team's id."""
        holder_id = func.coalesce(api_keys.c.id, teams.c.id).label("holder_id")
        query = (select(budgets, holder_id)
                 .outerjoin(api_keys, and_(budgets.c.holder_kind == "key", api_keys.c.name == budgets.c.holder))
                 .outerjoin(teams, and_(budgets.c.holder_kind == "team", teams.c.name == budgets.c.holder))
                 .order_by(budgets.c.holder_kind, budgets.c.holder, budgets.c.period, budgets.c.unit))
        with self.engine.connect() as connection:
            return [_row_to_budget(row) for row in connection.execute(query)]

    @maps_database_errors
    def clear_budgets(self, holder_kind: str, holder: str, *, period: str | None = None, unit: str | None = None,
                      by: Actor) -> int:
        """Remove a holder's budgets (those of one period, or one unit, if given); return how many went."""
        _checked(holder_kind, period, unit)
        conditions = [budgets.c.holder_kind == holder_kind, budgets.c.holder == holder]
        conditions += [column == value for column, value in ((budgets.c.period, period), (budgets.c.unit, unit))
                       if value is not None]
        with self.engine.begin() as connection:
            gone = connection.execute(select(budgets).where(*conditions)).all()
            if not gone:
                raise Missing(f"{holder_kind} '{holder}' has no such budget")
            connection.execute(delete(budgets).where(*conditions))
            _audit_cleared(connection, by, gone)
        return len(gone)

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

    def standings_of(self, budgets: list[Budget], zone: tzinfo, now: datetime) -> list[Standing]:
        """Each of ``budgets`` in its period holding ``now`` (in ``zone``), with what was spent of it."""
        periods = [(budget, *period_bounds(budget.period, now, zone)) for budget in budgets]
        return standings_in(periods, self.spent([(budget.slot, start) for budget, start, _ in periods]))

    def standings(self, zone: tzinfo, now: datetime, team: str | None = None) -> list[dict]:
        """Every budget with what was spent in its current period (in ``zone``), what is left, and when it resets.

        ``team`` keeps that team's budget, its keys' and their owners' (what a team admin sees).
        """
        held = self.list_budgets()
        if team is not None:
            keys = self.list_keys(team=team)
            holders = {("team", team)} | {("key", k.name) for k in keys} | {("person", k.owner) for k in keys}
            held = [b for b in held if (b.holder_kind, b.holder) in holders]
        return [standing.row() for standing in self.standings_of(held, zone, now)]

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
    """``BudgetStore.renew_leases``'s statements, on ``connection``, in its transaction."""
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


def _holder_exists(connection, holder_kind: str, holder: str) -> int | None:
    """Refuse a budget of a team or key that does not exist, or of a person who owns no key (a mistyped subject);
    return the team's or key's id."""
    if holder_kind == "person":
        if connection.execute(select(api_keys.c.id).where(api_keys.c.owner == holder)).first() is None:
            raise Missing(f"no key is owned by a person '{holder}' (their subject at the identity provider)")
        return None
    table = teams if holder_kind == "team" else api_keys
    found = connection.execute(select(table.c.id).where(table.c.name == holder)).scalar()
    if found is None:
        raise Missing(f"no {holder_kind} named '{holder}'")
    return found


def drop_held(connection, by: Actor, holder_kind: str, holder: str) -> None:
    """Delete a holder's budgets and everything it spent: a budget dies with its key or team, and a new key or
    team of the name starts clean (it is called as one is made too, for a charge that landed late)."""
    gone = connection.execute(select(budgets).where(budgets.c.holder_kind == holder_kind,
                                                    budgets.c.holder == holder)).all()
    for table in (budgets, budget_spend, budget_leases):
        connection.execute(delete(table).where(table.c.holder_kind == holder_kind, table.c.holder == holder))
    _audit_cleared(connection, by, gone)


def _audit_cleared(connection, by: Actor, rows) -> None:
    for row in rows:
        write_entry(connection, by, "budget.clear", f"{row.holder_kind} {row.holder}",
                    {"period": row.period, "unit": row.unit, "amount": row.amount, "mode": row.mode}, None)


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
