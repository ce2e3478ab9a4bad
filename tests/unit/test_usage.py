"""Usage rows from access records; the batching writer that loses nothing."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy.exc import OperationalError

from ollama_proxy.config import UsageSettings
from ollama_proxy.logs import AccessRecord
from ollama_proxy.usage import UsageRecorder, usage_row

WALL = datetime(2026, 11, 22, 20, 0, 10, tzinfo=timezone.utc)


def finished(**fields) -> AccessRecord:
    record = AccessRecord(request_id="r1", method="POST", path="/v1/chat/completions", client="127.0.0.1",
                          started=100.0, status=200, completed=True, principal="alice", surface="openai",
                          model="llama3.2", backend="default", upstream_model="llama3.2:latest",
                          prompt_tokens=12, counted_tokens=30, first_token=100.25)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_usage_row_carries_every_field():
    assert usage_row(finished(), now=102.5, wall=WALL) == {
        "ts": datetime(2026, 11, 22, 20, 0, 7, 500000, tzinfo=timezone.utc),
        "request_id": "r1", "key_name": "alice", "surface": "openai", "model": "llama3.2",
        "backend": "default", "upstream_model": "llama3.2:latest", "prompt_tokens": 12,
        "completion_tokens": 30, "duration_ms": 2500.0, "ttft_ms": 250.0, "status": 200, "aborted": False,
    }


def test_an_abandoned_stream_keeps_the_tokens_seen():
    row = usage_row(finished(completed=False, client_left=True, counted_tokens=None, provisional_tokens=7),
                    now=101.0, wall=WALL)
    assert (row["completion_tokens"], row["aborted"]) == (7, True)


class FakeStore:
    def __init__(self, failures: int = 0):
        self.batches: list[list[dict]] = []
        self.failures = failures
        self.written = threading.Event()

    def add_usage(self, rows: list[dict]) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
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
