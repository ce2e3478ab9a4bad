"""Usage rows from access records; the batching writer that loses nothing."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError, StatementError

from ollama_proxy.app import create_app
from ollama_proxy.config import StoreSettings, UsageSettings, parse_settings
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.observability.metrics import metrics
from ollama_proxy.observability.usage import UsageRecorder, reason, refused_row, usage_row
from ollama_proxy.store import StoreError, open_store
from ollama_proxy.store.errors import mapped

WALL = datetime(2026, 11, 22, 20, 0, 10, tzinfo=timezone.utc)


def finished(**fields) -> RequestRecord:
    record = RequestRecord(request_id="r1", method="POST", path="/v1/chat/completions", client="127.0.0.1",
                          started=100.0, status=200, completed=True, principal="alice", surface="openai",
                          model="llama3.2", backend="default", upstream_model="llama3.2:latest",
                          prompt_tokens=12, counted_tokens=30, first_token=100.25)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_usage_row_carries_every_field():
    record = finished(cached_tokens=3990, team="research", gpu_seconds=1.75, queued=0.3, key_id=3, team_id=1,
                      cached_tokens_estimated=3900)
    assert usage_row(record, now=102.5, wall=WALL) == {
        "ts": datetime(2026, 11, 22, 20, 0, 7, 500000, tzinfo=timezone.utc),
        "request_id": "r1", "key_name": "alice", "surface": "openai", "model": "llama3.2",
        "backend": "default", "upstream_model": "llama3.2:latest", "prompt_tokens": 12,
        "completion_tokens": 30, "duration_ms": 2500.0, "ttft_ms": 250.0, "status": 200, "aborted": False,
        "cached_tokens": 3990, "team": "research", "gpu_seconds": 1.75, "queue_ms": 300.0, "measured": False,
        "key_id": 3, "team_id": 1, "cached_tokens_estimated": 3900,
    }


def test_a_usage_row_says_ollamas_cached_tokens_only_where_it_did_and_the_estimate_apart():
    row = usage_row(finished(cached_tokens_estimated=3900), now=102.5, wall=WALL)  # Ollama 0.33: nothing said
    assert (row["cached_tokens"], row["cached_tokens_estimated"]) == (None, 3900)


def test_a_request_whose_client_left_while_it_waited_counts_the_wait_until_then():
    record = finished(queued=0.5, waiting_since=101.0, completed=False, client_left=True)
    assert usage_row(record, now=102.5, wall=WALL)["queue_ms"] == 2000.0


def test_usage_row_names_the_end_user_a_trusted_front_end_named():
    row = usage_row(finished(principal="webui", end_user="ann@lan"), now=102.5, wall=WALL)
    assert (row["key_name"], row["end_user"]) == ("webui", "ann@lan")
    assert "end_user" not in usage_row(finished(), now=102.5, wall=WALL)  # none named: the column stays null


def test_an_abandoned_stream_keeps_the_tokens_seen():
    row = usage_row(finished(completed=False, client_left=True, counted_tokens=None, provisional_tokens=7),
                    now=101.0, wall=WALL)
    assert (row["completion_tokens"], row["aborted"]) == (7, True)


def test_usage_row_fits_what_the_client_named_to_the_columns():
    row = usage_row(finished(model="m" * 300 + "\x00", prompt_tokens=2**40), now=102.5, wall=WALL)
    assert (row["model"], row["prompt_tokens"]) == ("m" * 255, 2**31 - 1)


class FakeStore:
    def __init__(self, failures: int = 0, refuse: str | None = None, failures_after: int | None = None):
        self.batches: list[list[dict]] = []
        self.failures = failures
        self.refuse = refuse  # a request id whose row the store refuses, as PostgreSQL refuses a NUL
        self.failures_after = failures_after  # writes that succeed before the store goes down
        self.written = threading.Event()

    def add_usage(self, rows: list[dict]) -> None:
        if self.failures_after is not None:
            if self.failures_after == 0:
                self.failures = 1
            self.failures_after -= 1
        if self.failures:
            self.failures -= 1
            raise mapped(OperationalError("INSERT", {}, Exception("database is locked")))
        if any(row["request_id"] == self.refuse for row in rows):
            refused = DataError("INSERT", {"model": "secret-looking parameter"}, Exception("value too long\nDETAIL"))
            raise mapped(refused)
        self.batches.append(rows)
        self.written.set()


def recorder(store: FakeStore, **settings) -> UsageRecorder:
    values = {"flush_interval": 60.0, "batch_size": 3, "max_pending": 100, **settings}
    return UsageRecorder(store.add_usage, UsageSettings(**values))


def test_rows_are_written_in_batches_on_flush():
    store = FakeStore()
    usage = recorder(store, batch_size=2)
    for n in range(5):
        usage.record(finished(request_id=f"r{n}"))
    store.written.wait(5)  # two rows waiting wake the writer at once, not after flush_interval
    usage.flush()
    assert all(len(batch) <= 2 for batch in store.batches)
    assert [row["request_id"] for batch in store.batches for row in batch] == [f"r{n}" for n in range(5)]


def test_requests_without_a_key_are_not_recorded():
    store = FakeStore()
    usage = recorder(store)
    usage.record(finished(principal=None))
    assert usage.flush() == 0 and store.batches == []


def test_a_failing_store_keeps_the_rows_in_order_for_the_next_try():
    store = FakeStore(failures=1)
    usage = recorder(store)
    usage.record(finished(request_id="a"))
    usage.record(finished(request_id="b"))
    assert usage.flush() == 0
    assert usage.flush() == 2
    assert [row["request_id"] for row in store.batches[0]] == ["a", "b"]


@pytest.mark.parametrize("pending, kept", [(3, ["r0", "r1", "r2"]), (2, ["r1", "r2"])])
def test_past_max_pending_the_oldest_rows_go(pending, kept, caplog):
    store = FakeStore(failures=10)
    usage = recorder(store, max_pending=pending, batch_size=100)
    for n in range(3):
        usage.record(finished(request_id=f"r{n}"))
    store.failures = 0
    usage.flush()
    assert [row["request_id"] for row in store.batches[0]] == kept
    assert ("rows dropped" in caplog.text) is (pending < 3)


@pytest.mark.parametrize("error, refused", [
    (mapped(DataError("INSERT", {}, Exception("value too long for type character varying(255)"))), True),
    (mapped(IntegrityError("INSERT", {}, Exception("null value in column ts"))), True),
    (mapped(StatementError("naive datetime", "INSERT", {}, ValueError("naive"))), True),  # a column type refused it
    (StoreError("unknown usage fields: colour"), True),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    (mapped(OperationalError("INSERT", {}, Exception("database is locked"))), False),
    (mapped(OperationalError("INSERT", {}, Exception("connection refused"))), False),
    (mapped(ProgrammingError("INSERT", {}, Exception("relation usage does not exist"))), False),
    (OSError("disk full"), False),
])
def test_refused_row_tells_a_rows_fault_from_the_stores(error, refused):
    assert refused_row(error) is refused


def test_reason_is_one_short_line_without_the_parameters():
    error = mapped(DataError("INSERT INTO usage ...", {"model": "m" * 1000}, Exception("value too long\nDETAIL: more")))
    assert reason(error) == "Exception: value too long"


def test_a_refused_row_is_dropped_and_counted_and_the_rest_of_its_batch_written(caplog):
    store = FakeStore(refuse="b")
    rejected = []
    usage = UsageRecorder(store.add_usage, UsageSettings(flush_interval=60.0, batch_size=10, max_pending=100),
                          on_rejected=lambda: rejected.append(1))
    for request_id in "abc":
        usage.record(finished(request_id=request_id))
    assert usage.flush() == 2
    assert [row["request_id"] for batch in store.batches for row in batch] == ["a", "c"]
    assert usage.rejected == 1 and rejected == [1]
    assert "refused the row of request b (key 'alice'), dropped (1 so far): Exception: value too long" in caplog.text
    assert "secret-looking parameter" not in caplog.text
    assert usage.flush() == 0  # not retried


def test_a_store_failing_while_a_batch_is_written_row_by_row_keeps_the_rest():
    store = FakeStore(refuse="b", failures_after=3)  # the batch, a, b; then c finds the store down
    usage = recorder(store, batch_size=10)
    for request_id in "abcd":
        usage.record(finished(request_id=request_id))
    assert usage.flush() == 1 and usage.rejected == 1
    assert usage.flush() == 2
    assert [row["request_id"] for batch in store.batches for row in batch] == ["a", "c", "d"]


@pytest.fixture
def postgres_store(postgres_cluster):
    store = open_store(StoreSettings(postgres_cluster.new_database(), busy_timeout=5.0))
    yield store
    store.close()


@pytest.mark.postgres
def test_a_request_naming_a_hostile_model_is_recorded_on_postgresql(postgres_store):
    usage = recorder(postgres_store, batch_size=100)
    usage.record(finished(request_id="hostile", model="m" * 300 + "\x00\ud800", upstream_model="u\x00"))
    usage.record(finished(request_id="next"))
    assert usage.flush() == 2
    rows = sorted(postgres_store.query_usage(), key=lambda row: row["id"])
    assert [(row["request_id"], row["model"], row["upstream_model"]) for row in rows] == [
        ("hostile", "m" * 255, "u"), ("next", "llama3.2", "llama3.2:latest")]


@pytest.mark.postgres
def test_a_row_postgresql_refuses_does_not_hold_up_the_others(postgres_store, caplog):
    usage = recorder(postgres_store, batch_size=100)
    usage.record(finished(request_id="before"))
    usage.queue({**usage_row(finished(), now=102.5, wall=WALL), "request_id": "nul", "model": "a\x00b"})
    usage.record(finished(request_id="after"))
    assert usage.flush() == 2
    assert sorted(row["request_id"] for row in postgres_store.query_usage()) == ["after", "before"]
    assert usage.rejected == 1 and "refused the row of request nul" in caplog.text
    usage.record(finished(request_id="later"))
    assert usage.flush() == 1  # the refused row is not tried again


@pytest.mark.postgres
def test_the_refused_rows_are_counted_in_the_metrics(tmp_path, postgres_cluster):
    app = create_app(parse_settings({"logging": {"dir": str(tmp_path)}, "metrics": {"enabled": True},
                                     "store": {"url": postgres_cluster.new_database()}}, environ={}))
    usage = app.extensions["ollama_proxy.observability.usage"]
    usage.queue({**usage_row(finished(), now=102.5, wall=WALL), "model": "a\x00b"})
    usage.flush()
    assert metrics(app).registry.get_sample_value("ollama_proxy_usage_rows_rejected_total") == 1
