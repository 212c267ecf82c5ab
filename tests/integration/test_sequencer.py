"""The sequencer keeps its speed on a long-lived connection.

PL/pgSQL caches the plans of a function's statements per session; after five calls
PostgreSQL may switch to a generic plan and keep it. The listener polls ``pgevents_assign``
on one connection for as long as it runs, usually starting on an empty log: the generic
plan chosen then scanned the whole log once per pending event, and the next backlog stalled
delivery for seconds per batch. The signal checked here is the work done, not the time
taken: the tuples the call read from the log by sequential scan, which PostgreSQL counts
per transaction (``pg_stat_xact_user_tables``).
"""

from __future__ import annotations

import psycopg

BURST = 5000
BATCH = 500


def test_the_sequencer_plans_every_call_afresh(pg: psycopg.Connection) -> None:
    row = pg.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'pgevents_assign(integer, bigint)'::regprocedure"
    ).fetchone()
    assert row is not None
    assert "plan_cache_mode=force_custom_plan" in row[0]
    assert "search_path=pg_catalog, pg_temp" in row[0]  # 0004's pinning is kept


def _seq_tuples_read(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables WHERE relname = 'pgevents_event'"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_burst_after_empty_polls_is_positioned_without_rescanning_the_log(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    iso_pg.execute("ANALYZE pgevents_event")  # an empty log, as autovacuum last saw it
    with psycopg.connect(isolated_db) as listener:  # one session, as the listener's
        for _ in range(8):  # more than the five custom plans PostgreSQL tries first
            assert listener.execute("SELECT count(*) FROM pgevents_assign(%s, 0)", (BATCH,)).fetchone() == (0,)
            listener.commit()
        iso_pg.execute("INSERT INTO people (name) SELECT 'p' || g FROM generate_series(1, %s) g", (BURST,))

        positioned = 0
        for _ in range(BURST // BATCH):  # each call positions a full batch
            before = _seq_tuples_read(listener)
            rows = listener.execute("SELECT event_id FROM pgevents_assign(%s, 0)", (BATCH,)).fetchall()
            read = _seq_tuples_read(listener) - before
            listener.commit()
            assert len(rows) == BATCH
            # At most one pass over the log per call (a plan may hash-join it); the generic plan
            # read the log once per event: BATCH times that.
            assert read <= BURST, f"the sequencer read {read:,} log rows to position {BATCH}"
            positioned += len(rows)
        assert positioned == BURST
        assert listener.execute("SELECT count(*) FROM pgevents_assign(%s, 0)", (BATCH,)).fetchone() == (0,)
