"""Keep budgets (a team's, a key's or a person's, per calendar period) and each one's standing in its period.

A budget is tokens (prompt plus answer, as Ollama or the provider counts them)
or GPU-seconds (Ollama's ``total_duration``) per day, week (from Monday) or
month, in the proxy's time zone. What each holder spent in a period is kept
and charged in ``store.spend``; several instances share the store
(PostgreSQL), so the count is one for all.

A budget of a key or team holds that key or team, not whatever has its name:
it is read with its holder's id (``Budget.holder_id``), it dies with its holder
(``drop_held``), and a charge is added only while the name is still the id's
the request was checked as: a key or team deleted and made again under its name
starts from nothing, even while a request of the old one ends.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from ollama_proxy.store.audit import Actor, write_entry
from ollama_proxy.store.errors import Missing, StoreError, maps_database_errors
from ollama_proxy.store.schema import api_keys, budget_leases, budget_spend, budgets, teams, utcnow

HOLDERS = ("team", "key", "person")  # a person: every key they own (``api_keys.owner``, their sign-on subject)
HOLDER_LENGTH = 100  # the budgets.holder column
PERIODS = ("day", "week", "month")
UNITS = ("tokens", "gpu_seconds")
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
    (``SpendStore.spent``)."""
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
    """The budgets table; mixed into ``Store``, beside ``store.spend.SpendStore`` (``spent``) and ``KeyStore``."""

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
