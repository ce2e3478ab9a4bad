"""Record what each request used, and read it back for exports and charts."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Engine, Integer, String, and_, case, exists, func, insert, or_, select

from ollama_proxy.store.errors import StoreError, maps_database_errors
from ollama_proxy.store.schema import teams, usage

USAGE_FIELDS = tuple(c.name for c in usage.columns if c.name != "id")
# A key's rows are summed by its id, not its name: two keys that had one name, one after the other, stay apart.
_GROUPS = {"key": (usage.c.key_name, usage.c.key_id), "model": (usage.c.model,)}
# NUL, which PostgreSQL text cannot hold, and lone surrogates (JSON's "\ud800"), which UTF-8 cannot encode.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# PostgreSQL's integer; SQLite's is wider. A count beyond it is held at the bound, not refused.
INTEGER_RANGE = (-2**31, 2**31 - 1)


def fit_text(text: str, length: int) -> str:
    """Drop the characters no database stores, then cut ``text`` to ``length`` characters."""
    return _UNSTORABLE.sub("", text)[:length]


def fit_usage_row(row: dict) -> dict:
    """Return ``row`` with each value made to fit its column: a client names the model, any string at all.

    Text is cut to its column's length without the characters no database stores; a whole
    number is held within PostgreSQL's integer. A row that does not fit would fail its batch.
    """
    fitted = dict(row)
    for name, value in row.items():
        length = _TEXT_LENGTHS.get(name)
        if length is not None and isinstance(value, str):
            fitted[name] = fit_text(value, length)
        elif name in _WHOLE_NUMBERS and isinstance(value, int):
            fitted[name] = min(max(value, INTEGER_RANGE[0]), INTEGER_RANGE[1])
    return fitted


# The usage columns of bounded text, by their length, and those of whole numbers (``fit_usage_row``, every request).
_TEXT_LENGTHS = {c.name: c.type.length for c in usage.columns if isinstance(c.type, String) and c.type.length}
_WHOLE_NUMBERS = frozenset(c.name for c in usage.columns if isinstance(c.type, Integer))


# What the usage report reads of each row (``observability.usage_report``).
REPORT_FIELDS = ("ts", "team", "key_name", "end_user", "model", "prompt_tokens", "completion_tokens", "gpu_seconds",
                 "ttft_ms", "queue_ms", "status", "key_id", "team_id")


def _of_team(name: str):
    """The rows of the team that holds ``name`` now, by its id (not those of one deleted before it was made); of
    a name no team holds, the rows recorded under it."""
    current = select(teams.c.id).where(teams.c.name == name)
    return or_(usage.c.team_id == current.scalar_subquery(), and_(usage.c.team == name, ~exists(current)))


def _filters(since: datetime | None, until: datetime | None, key: str | None, model: str | None,
             end_user: str | None = None, team: str | None = None) -> list:
    """Build the WHERE clauses: ``since`` inclusive, ``until`` exclusive."""
    clauses = [] if team is None else [_of_team(team)]
    if since is not None:
        clauses.append(usage.c.ts >= since)
    if until is not None:
        clauses.append(usage.c.ts < until)
    if key is not None:
        clauses.append(usage.c.key_name == key)
    if model is not None:
        clauses.append(usage.c.model == model)
    if end_user is not None:
        clauses.append(usage.c.end_user == end_user)
    return clauses


class UsageStore:
    """The usage table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def add_usage(self, rows: list[dict]) -> None:
        """Insert a batch of usage rows (keys from ``USAGE_FIELDS``; ``ts`` an aware datetime) at once."""
        if not rows:
            return
        for row in rows:
            unknown = set(row) - set(USAGE_FIELDS)
            if unknown:
                raise StoreError(f"unknown usage fields: {', '.join(sorted(unknown))}")
            if not isinstance(row.get("ts"), datetime):
                raise StoreError("every usage row needs ts, an aware datetime")
        full = [{name: row.get(name) for name in USAGE_FIELDS} for row in rows]
        with self.engine.begin() as connection:
            connection.execute(insert(usage), full)

    @maps_database_errors
    def query_usage(self, since: datetime | None = None, until: datetime | None = None, key: str | None = None,
                    model: str | None = None, limit: int | None = 1000, newest_first: bool = False,
                    end_user: str | None = None, team: str | None = None) -> list[dict]:
        """Return usage rows, oldest first (or newest first), as dicts with ``id`` and every field.

        ``limit`` keeps the first rows in that order: the oldest, or with ``newest_first`` the newest.
        ``end_user`` keeps the requests a trusted front end made for that user; ``team`` those of its keys.
        """
        order = (usage.c.ts.desc(), usage.c.id.desc()) if newest_first else (usage.c.ts, usage.c.id)
        query = select(usage).where(*_filters(since, until, key, model, end_user, team)).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    @maps_database_errors
    def usage_figures(self, since: datetime, until: datetime, team: str | None = None) -> list[dict]:
        """Return what the usage report sums of each row from ``since`` (inclusive) to ``until`` (exclusive).

        ``team`` keeps the rows of that team's keys (a team admin's report).
        """
        query = select(*(usage.c[name] for name in REPORT_FIELDS)).where(*_filters(since, until, None, None,
                                                                                   team=team))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    @maps_database_errors
    def usage_by_day(self, since: datetime | None = None, until: datetime | None = None, key: str | None = None,
                     model: str | None = None, by: str | None = None) -> list[dict]:
        """Sum usage per UTC day (and per key or model when ``by`` is "key" or "model"), oldest first.

        Each row: day, requests, prompt_tokens, completion_tokens, errors (status 400 and up), cached_tokens;
        per key, key_id and key_name (a key's rows are summed by its id).
        """
        if by is not None and by not in _GROUPS:
            raise StoreError("by is 'key', 'model' or none")
        day = func.date(usage.c.ts).label("day")
        groups = [day, *(_GROUPS[by] if by else ())]
        query = select(*groups, func.count().label("requests"),
                       func.coalesce(func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
                       func.coalesce(func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
                       func.coalesce(func.sum(case((usage.c.status >= 400, 1), else_=0)), 0).label("errors"),
                       func.coalesce(func.sum(usage.c.cached_tokens), 0).label("cached_tokens"))
        query = query.where(*_filters(since, until, key, model)).group_by(*groups).order_by(*groups)
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            row["day"] = str(row["day"])  # SQLite returns text, PostgreSQL a date: one form for both
            for count in ("prompt_tokens", "completion_tokens", "errors", "cached_tokens"):
                row[count] = int(row[count])
        return rows
