"""The chaos run, short: the whole topology under every fault kind, every stream checked.

``python -m chaos`` starts its own PostgreSQL cluster, Redis, two daphne and two runlisten
on free ports; this runs it for 25 seconds of writing with a fault every ~3.5 s (each of the
five kinds comes up: see ``plan.faults``) and client drops, and reads its report. The long
run and its figures are in docs/chaos.md.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from chaos import plan
from chaos.schema import PAYLOAD_FUNCTION, payload
from tests.support import ROOT

pytestmark = pytest.mark.fault


def test_the_sql_payload_function_and_the_clients_check_agree(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:  # rolled back: the test database keeps no trace
        conn.execute(PAYLOAD_FUNCTION)
        for k, rev, size in [("w0.1", 0, 10), ("L.12", 3, 9001), ("fence", 0, 10), ("w2.9999", 11, 64_000)]:
            row = conn.execute("SELECT chaos_payload(%s, %s, %s)", (k, rev, size)).fetchone()
            assert row is not None and row[0] == payload(k, rev, size)
        conn.rollback()


@pytest.mark.timeout(240)
def test_a_short_chaos_run_loses_duplicates_and_disorders_nothing(tmp_path: Path) -> None:
    args = ["--duration", "25", "--fault-every", "3.5", "--seed", "11", "--clients", "2", "--out", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the run stops everything it started
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"the chaos run did not finish:\n{output[-5000:]}")
    assert proc.returncode == 0, output[-5000:]
    report = json.loads((tmp_path / "report.json").read_text())
    overall = report["overall"]
    assert (overall["lost"], overall["duplicated"], overall["out_of_order"], overall["corrupt"]) == (0, 0, 0, 0)
    assert overall["received"] == overall["expected"] > 1000
    assert report["problems"] == {}
    assert set(report["fault_counts"]) == set(plan.FAULT_KINDS), report["faults"]
    for kind in plan.CLIENT_KINDS:
        assert report["kinds"][kind]["expected"] > 0
    assert overall["drops"] > 0
    writer = report["writer"]["transactions"]
    assert {"single", "multi", "update", "large", "long"} <= set(writer), writer
