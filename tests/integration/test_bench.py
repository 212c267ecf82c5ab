"""The benchmark at a tiny size: it runs end to end and nothing is lost or duplicated.

Timing figures are the benchmark's business (docs/benchmarks.md); this only checks that
the harness works and that every expected delivery was made exactly once.
"""

from __future__ import annotations

import io

from bench.__main__ import Config, run


def test_benchmark_smoke_run_loses_and_duplicates_nothing(isolated_db: str) -> None:
    cfg = Config(
        database_url=isolated_db,
        scenarios=("full", "fanout", "idle"),
        full_events=100,
        fanout=[(4, 100, 1)],
        idle=20,
        client_procs=2,
    )
    log = io.StringIO()
    rows = run(cfg, out=log)
    measured = [r for r in rows if r.expected]
    assert {r.system for r in measured} == {"pgevents", "floor: NOTIFY → psycopg LISTEN"}, log.getvalue()
    assert len(measured) == 4
    for row in measured:
        assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
        assert row.latency is not None
    idle = [r for r in rows if "idle" in r.scenario]
    assert idle and idle[0].server_rss_mb
