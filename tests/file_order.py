"""Under pytest-xdist, the slowest test files are handed out first, so that no long file starts last and
leaves the other processes idle at the end.

``file_seconds.json`` holds what each slow file took in a whole run of ``scripts/test.sh`` on two cores
(files under 15 s left out). Only the order changes: a stale figure or a file not listed (a new one, or a
fast one) costs balance, never a test. ``scripts/test.sh`` passes ``--no-loadscope-reorder``, or xdist
would hand out files by their number of tests instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FILE_SECONDS = Path(__file__).resolve().parent / "file_seconds.json"


def file_seconds() -> dict[str, float]:
    return json.loads(FILE_SECONDS.read_text())


@pytest.hookimpl(trylast=True)  # after tests/e2e/conftest.py puts the scan of every log last
def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the order as written
    seconds = file_seconds()
    items.sort(key=lambda item: -seconds.get(item.path.relative_to(config.rootpath).as_posix(), 0))
