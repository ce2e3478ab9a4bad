"""Every benchmark module imports: a benchmark the code moved away from is found here, not when it is next run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                 for path in (ROOT / "bench").rglob("*.py") if path.name != "__init__.py")
# In a process of its own: some benchmarks patch the standard library with gevent as they are imported.
IMPORT_EACH = """
import importlib, sys
failed = []
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        failed.append(f"{module}: {exc!r}")
print("\\n".join(failed))
"""


def test_every_benchmark_imports():
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH, *MODULES], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert MODULES and done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr[-2000:]
