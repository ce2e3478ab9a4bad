"""A connection the database cut is dropped, not lent again; a charge cut before its commit is sent once more."""

from __future__ import annotations

import logging
import socket
import sqlite3
import sys
import time
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import event, text

from ollama_proxy.config import StoreSettings
from ollama_proxy.store import DatabaseError, open_store
from ollama_proxy.store.engine import _reset_failure_in_one_line, connection_lost

SLOT = ("key", "alice", "day", "tokens")
START = datetime(2026, 11, 26, tzinfo=timezone.utc)


@pytest.mark.parametrize(("error", "lost"), [
    (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True),
    (errors.AdminShutdown("terminating connection due to administrator command"), True),
    (errors.ConnectionFailure("the network cut it"), True),
    (errors.QueryCanceled("canceling statement due to statement timeout"), False),  # the connection lives on
    (errors.LockNotAvailable("could not obtain lock"), False),
    (psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters were passed"), False),
    (errors.UniqueViolation("duplicate key"), False),
])
def test_a_postgresql_error_says_whether_its_connection_is_gone(error, lost):
    assert connection_lost(error, psycopg) is lost


def test_no_sqlite_error_is_a_lost_connection():
    assert not connection_lost(sqlite3.OperationalError("database is locked"), sqlite3)


def test_a_connection_cut_as_it_went_back_to_the_pool_is_said_in_one_line():
    try:
        raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly\n\tmore")
    except psycopg.OperationalError:
        record = logging.LogRecord("sqlalchemy.pool.impl.QueuePool", logging.ERROR, __file__, 1,
                                   "Exception during reset or similar", (), sys.exc_info())
    assert _reset_failure_in_one_line(record)
    assert record.exc_info is None and record.levelno == logging.WARNING
    assert record.getMessage() == ("store: a connection lost as it went back to the pool was dropped: "
                                   "OperationalError: consuming input failed: server closed the connection "
                                   "unexpectedly")


@pytest.mark.postgres
def test_a_charge_whose_connection_is_cut_before_its_commit_is_sent_again_and_lands_once(postgres_cluster):
    store = open_store(StoreSettings(postgres_cluster.new_database(), busy_timeout=5.0))
    admin = postgres_cluster.admin_engine()
    cut = []

    def cut_the_first(dbapi_connection, _record, _proxy):  # lent after its pre-ping: cut before the charge is sent
        if not cut:
            pid = dbapi_connection.info.backend_pid
            with admin.connect() as connection:
                cut.append(connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar())

    event.listen(store.engine, "checkout", cut_the_first)
    try:
        store.charge([(SLOT, START, 7.0)])
    finally:
        event.remove(store.engine, "checkout", cut_the_first)
        admin.dispose()
    try:
        assert cut == [True]
        assert store.spent([(SLOT, START)]) == {(SLOT, START): (7.0, 0, 0.0)}
    finally:
        store.close()


def test_a_database_that_never_answers_is_given_up_after_network_timeout():
    silent = socket.socket()  # takes the connection (the kernel does) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/gone"
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseError):
            open_store(StoreSettings(url, busy_timeout=5.0, network_timeout=2.0))
    finally:
        silent.close()
    assert time.monotonic() - started < 15  # not forever: about network_timeout, on a loaded machine
