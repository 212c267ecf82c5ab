"""The collector setting for serving processes: applied once, freezing what exists."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from pgevents.delivery import collector
assert gc.get_freeze_count() == 0
assert collector.tune() is True
frozen = gc.get_freeze_count()
assert frozen > 0
assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
assert collector.tune() is False  # once per process
assert gc.get_freeze_count() == frozen
print("ok")
"""


def test_tune_freezes_once_and_raises_the_young_threshold() -> None:
    # its own interpreter: the setting is process-wide
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
