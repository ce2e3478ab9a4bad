import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("gevent_close_probe.py")
ROOT = Path(__file__).resolve().parents[3]


def test_closing_a_stream_wakes_its_reader_in_another_greenlet():
    done = subprocess.run([sys.executable, str(PROBE)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    # Ended at once, the way any lost connection ends a stream, not left waiting for a socket that is gone.
    assert done.stdout.startswith("pieces 2; ended with an error: "), done.stdout
    assert "lost mid-answer" in done.stdout
