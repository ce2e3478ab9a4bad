"""Begin, as the unit tests begin, the one slow step a unit test only waits for: collecting the end-to-end tests.

``tests/unit/test_markers.py`` checks which end-to-end tests ``-m "not <every tool>"`` keeps, in a pytest
of its own that imports every end-to-end module: seconds of work that needs nothing of the unit tests. Begun
when collection ends, it runs beside them (on another core, where there is one), and the test reads its list.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import OUTSIDE_TOOLS

ROOT = Path(__file__).resolve().parents[2]
WAITS_FOR_IT = "test_markers.py::test_leaving_every_tool_out_leaves_out_every_test_that_starts_one"
_COLLECTING = pytest.StashKey[tuple]()


def _collect_e2e() -> tuple[subprocess.Popen, object]:
    """Start listing the end-to-end tests that leaving every outside tool out keeps; the process and its output."""
    output = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stop it until it is read
    leave_out = " or ".join(OUTSIDE_TOOLS)
    process = subprocess.Popen([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "-m", f"not ({leave_out})", "tests/e2e"],
                               cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True)
    return process, output


def pytest_collection_finish(session):
    if not session.config.option.collectonly and any(item.nodeid.endswith(WAITS_FOR_IT) for item in session.items):
        session.config.stash[_COLLECTING] = _collect_e2e()


def pytest_sessionfinish(session):
    process, output = session.config.stash.get(_COLLECTING, (None, None))
    if process is not None:
        if process.poll() is None:  # its test did not run to the end
            process.kill()
        process.wait()
        output.close()


@pytest.fixture
def e2e_collection(request) -> tuple[int, str]:
    """The exit status and output of ``pytest --collect-only -m "not (<every tool>)" tests/e2e``."""
    if _COLLECTING not in request.config.stash:  # run in a way the hook did not foresee: begun now
        request.config.stash[_COLLECTING] = _collect_e2e()
    process, output = request.config.stash[_COLLECTING]
    status = process.wait(timeout=120)
    output.seek(0)
    return status, output.read()
