"""The README's scripts on a checkout as the other README command left it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stands in for .venv's pip: records what it was asked, and installs the dev extra's ruff and pytest.
FAKE_PIP = """#!/bin/sh
echo "pip $*" >> "$(dirname "$0")/../calls"
case "$*" in *dev*) for tool in ruff pytest; do printf '#!/bin/sh\\n' > "$(dirname "$0")/$tool"; \
chmod +x "$(dirname "$0")/$tool"; done ;; esac
"""
FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls"
"""


def test_check_right_after_serve_installs_the_dev_extra_and_runs(tmp_path):
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pip").write_text(FAKE_PIP)
    (bin_dir / "python").write_text(FAKE_TOOL)
    (bin_dir / "ollama-proxy").write_text(FAKE_TOOL)  # what scripts/serve.sh installs: no ruff, no pytest
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    done = subprocess.run(["bash", "scripts/check"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / ".venv" / "calls").read_text().splitlines()
    assert calls[0] == "pip install --quiet -e .[test,dev]"
    assert calls[1].startswith("python -m pytest -q -m ") and calls[1].endswith(" tests/unit")  # then the tests
