"""The collector setting for serving processes: applied once, freezing what exists, or not at all."""

from __future__ import annotations

import subprocess
import sys

import pytest

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

#: A serving process's first runtime, with TUNE_GC as given: prints the freeze count and threshold.
RUNTIME = """
import asyncio, gc, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["pgevents"],
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    PGEVENTS={"TUNE_GC": sys.argv[1] == "on"},
)
django.setup()
from pgevents.delivery import runtime

async def main():
    runtime.current()

asyncio.run(main())
print(gc.get_freeze_count() > 0, gc.get_threshold()[0])
"""


def test_tune_freezes_once_and_raises_the_young_threshold() -> None:
    # its own interpreter: the setting is process-wide
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(("setting", "expected"), [("on", "True 10000"), ("off", "False 700")])
def test_the_runtime_tunes_the_collector_only_when_allowed(setting: str, expected: str) -> None:
    out = subprocess.run([sys.executable, "-c", RUNTIME, setting], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == expected
