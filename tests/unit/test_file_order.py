"""The slowest test files first under pytest-xdist (tests/file_order.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests import file_order

ROOT = Path(__file__).resolve().parents[2]


def _items(*paths: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(path=ROOT / path, name=f"{path}#{n}") for n, path in enumerate(paths)]


def test_every_file_timed_is_a_test_file_of_the_suite():
    timed = file_order.file_seconds()
    assert timed and all((ROOT / path).is_file() and Path(path).name.startswith("test_") for path in timed)


def test_a_worker_gets_the_slowest_files_first_each_files_tests_in_their_order(monkeypatch):
    slowest, slower = sorted(file_order.file_seconds().items(), key=lambda kv: -kv[1])[:2]
    items = _items("tests/unit/test_fast.py", slower[0], slowest[0], slower[0], "tests/unit/test_fast.py")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    file_order.pytest_collection_modifyitems(SimpleNamespace(rootpath=ROOT), items)
    assert [item.name for item in items] == [f"{slowest[0]}#2", f"{slower[0]}#1", f"{slower[0]}#3",
                                             "tests/unit/test_fast.py#0", "tests/unit/test_fast.py#4"]


def test_one_process_keeps_the_order_as_written(monkeypatch):
    slowest = max(file_order.file_seconds().items(), key=lambda kv: kv[1])[0]
    items = _items("tests/unit/test_fast.py", slowest)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    file_order.pytest_collection_modifyitems(SimpleNamespace(rootpath=ROOT), items)
    assert [item.name for item in items] == ["tests/unit/test_fast.py#0", f"{slowest}#1"]
