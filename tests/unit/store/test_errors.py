"""SQLAlchemy's errors end where the store ends: each becomes the store's own, for every method."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
    StatementError,
)

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import Budget, DatabaseError, Store, StoreError, ValueRefused, open_store
from ollama_proxy.store.errors import database_errors, mapped
from ollama_proxy.store.keys import new_secret
from tests.actors import TESTER

MAPPING_CASES = [
    pytest.param(DataError("INSERT", {"model": "m" * 1000}, Exception("value too long\nDETAIL: more")),
                 ValueRefused, "Exception: value too long", id="data"),
    pytest.param(IntegrityError("INSERT", {}, Exception("null value in column ts")),
                 ValueRefused, "Exception: null value in column ts", id="integrity"),
    pytest.param(StatementError("naive datetime", "INSERT", {}, ValueError("naive")),
                 ValueRefused, "ValueError: naive", id="a-column-type-refused-it"),
    pytest.param(OperationalError("INSERT", {}, Exception("database is locked")),
                 DatabaseError, "Exception: database is locked", id="locked"),
    pytest.param(ProgrammingError("INSERT", {}, Exception("relation usage does not exist")),
                 DatabaseError, "Exception: relation usage does not exist", id="no-table"),
    pytest.param(ArgumentError("Could not parse SQLAlchemy URL"),
                 DatabaseError, "ArgumentError: Could not parse SQLAlchemy URL", id="no-driver-error-under-it"),
]


@pytest.mark.parametrize("error, kind, reason", MAPPING_CASES)
def test_each_sqlalchemy_error_becomes_the_stores_with_its_message_and_a_short_reason(error, kind, reason):
    with pytest.raises(DatabaseError) as caught, database_errors():
        raise error
    assert type(caught.value) is kind
    assert str(caught.value) == str(error)  # what the callers log, as before
    assert caught.value.reason == reason
    assert caught.value.__cause__ is error  # a traceback still shows where the database failed


def test_the_stores_own_errors_pass_unchanged():
    refused = StoreError("scope must be one of generate, manage")
    with pytest.raises(StoreError) as caught, database_errors():
        raise refused
    assert caught.value is refused
    assert not isinstance(mapped(OperationalError("x", {}, Exception("y"))), SQLAlchemyError)


NOW = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)
# Every public method of the store, called as a caller would.
CALLS = {
    "create_key": lambda store: store.create_key("alice", by=TESTER),
    "list_keys": lambda store: store.list_keys(),
    "get_key": lambda store: store.get_key("alice"),
    "find_key": lambda store: store.find_key(new_secret()),
    "find_secret": lambda store: store.find_secret(new_secret()),
    "rotate_key": lambda store: store.rotate_key("alice", by=TESTER),
    "update_key": lambda store: store.update_key("alice", enabled=False, by=TESTER),
    "touch_key": lambda store: store.touch_key("alice", NOW),
    "record_event": lambda store: store.record_event(TESTER, "sign-in", "admin"),
    "audit_trail": lambda store: store.audit_trail(),
    "delete_key": lambda store: store.delete_key("alice", by=TESTER),
    "create_team": lambda store: store.create_team("lab", by=TESTER),
    "list_teams": lambda store: store.list_teams(),
    "get_team": lambda store: store.get_team("lab"),
    "update_team": lambda store: store.update_team("lab", by=TESTER, rpm=5),
    "delete_team": lambda store: store.delete_team("lab", by=TESTER),
    "set_budget": lambda store: store.set_budget("team", "lab", period="day", unit="tokens", amount=5, by=TESTER),
    "list_budgets": lambda store: store.list_budgets(),
    "clear_budgets": lambda store: store.clear_budgets("team", "lab", by=TESTER),
    "spent": lambda store: store.spent([(("team", "lab", "day", "tokens"), NOW)]),
    "charge": lambda store: store.charge([(("team", "lab", "day", "tokens"), NOW, 5)]),
    "charge_together": lambda store: store.charge_together([([(("team", "lab", "day", "tokens"), NOW, 5)], {})]),
    "standings": lambda store: store.standings(timezone.utc, NOW),
    "standings_of": lambda store: store.standings_of([Budget(1, "team", "lab", "day", "tokens", 5.0, "hard", NOW)],
                                                     timezone.utc, NOW),
    "renew_leases": lambda store: store.renew_leases("worker", [], [], lambda *_: 0.0, NOW, NOW),
    "note_refusal": lambda store: store.note_refusal(("team", "lab", "day", "tokens"), NOW),
    "add_usage": lambda store: store.add_usage([{"ts": NOW, "request_id": "r1"}]),
    "query_usage": lambda store: store.query_usage(),
    "usage_by_day": lambda store: store.usage_by_day(by="key"),
    "usage_figures": lambda store: store.usage_figures(NOW, NOW),
    "list_aliases": lambda store: store.list_aliases(),
    "set_alias": lambda store: store.set_alias("gpt-4o", "llama3.2", by=TESTER),
    "delete_alias": lambda store: store.delete_alias("gpt-4o", by=TESTER),
    "list_overrides": lambda store: store.list_overrides(),
    "set_override": lambda store: store.set_override("llama3.2", {"num_ctx": 8192}, by=TESTER),
    "delete_override": lambda store: store.delete_override("llama3.2", by=TESTER),
    "hold_shown_secret": lambda store: store.hold_shown_secret("h1", "alice", b"sealed", until=NOW),
    "take_shown_secret": lambda store: store.take_shown_secret("h1", "alice"),
    "confirm_member": lambda store: store.confirm_member("sub-mia", name="mia", role="member", team="lab",
                                                         refresh_token=None, now=NOW),
    "lose_member": lambda store: store.lose_member("sub-mia", "gone", by=TESTER, now=NOW),
    "note_member_check": lambda store: store.note_member_check("sub-mia", "unreachable", now=NOW),
    "claim_member_check": lambda store: store.claim_member_check("sub-mia", now=NOW, until=NOW),
    "members_due": lambda store: store.members_due(before=NOW, now=NOW),
    "get_member": lambda store: store.get_member("sub-mia"),
    "list_members": lambda store: store.list_members(),
    "revision": lambda store: store.revision(),
}
NO_DATABASE = {"close"}  # disposes of the connection pool: asks the database nothing


def test_every_public_method_of_the_store_is_called_below():
    public = {name for name in dir(Store) if not name.startswith("_") and callable(getattr(Store, name))}
    assert public - NO_DATABASE == set(CALLS)


@pytest.fixture(scope="module")
def broken_store(tmp_path_factory):
    """One store for every method: migrating a store takes long, and a method that fails changes nothing."""
    where = tmp_path_factory.mktemp("broken")
    store = open_store(StoreSettings(f"sqlite:///{where / 'store.db'}", 5.0))
    store.engine.dispose()
    (where / "store.db").unlink()
    (where / "store.db").mkdir()  # the file is now a directory: every query fails
    yield store
    store.close()


@pytest.mark.parametrize("method", CALLS)
def test_a_failing_database_raises_the_stores_error_from_every_method(broken_store, method):
    with pytest.raises(DatabaseError) as caught:
        CALLS[method](broken_store)
    assert isinstance(caught.value.__cause__, SQLAlchemyError)


def test_a_store_that_cannot_be_opened_raises_the_stores_error(tmp_path):
    (tmp_path / "store.db").mkdir()
    with pytest.raises(DatabaseError):
        open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))
