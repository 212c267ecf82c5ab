"""The sequencer keeps its speed on a long-lived connection.

PL/pgSQL caches the plans of a function's statements per session. The listener polls
``pgevents_assign`` on one connection for as long as it runs, usually starting on an empty
log: a generic plan chosen then (before 0006) scanned the whole log once per pending event,
and the next backlog stalled delivery for seconds per batch. Since 0009 the plans are
generic from the first call, with every path but the log's indexes switched off. The signal
checked here is the work done, not the time taken: the tuples the call read from the log by
sequential scan, which PostgreSQL counts per transaction (``pg_stat_xact_user_tables``).
"""

from __future__ import annotations

import psycopg

BURST = 5000
BATCH = 500


#: What the sequencer runs with (0009): plans made once, through indexes only.
SEQUENCER_CONFIG = [
    "search_path=pg_catalog, pg_temp",  # 0004's pinning is kept
    "plan_cache_mode=force_generic_plan",
    "enable_seqscan=off",
    "enable_bitmapscan=off",
    "enable_hashjoin=off",
    "enable_mergejoin=off",
    "jit=off",
]


def test_the_sequencer_plans_once_through_the_indexes_only(pg: psycopg.Connection) -> None:
    row = pg.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'pgevents_assign(integer, bigint)'::regprocedure"
    ).fetchone()
    assert row is not None
    assert row[0] == SEQUENCER_CONFIG


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


def test_a_call_that_finds_nothing_writes_nothing(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """A call that finds nothing pending (the listener's common case between commits) takes
    no lock and writes no row: it needs no transaction id, so its commit waits for no WAL
    flush. The ``published`` mark is written only when it moves."""
    iso_pg.execute("INSERT INTO people (name) VALUES ('a'), ('b')")
    with psycopg.connect(isolated_db, autocommit=True) as listener:
        rows = listener.execute("SELECT event_id FROM pgevents_assign(%s, 0)", (BATCH,)).fetchall()
        assert len(rows) == 2
        last = rows[-1][0]
        listener.execute("SELECT count(*) FROM pgevents_assign(%s, %s)", (BATCH, last))  # moves the mark
        marks = listener.execute("SELECT name, value, xmin::text FROM pgevents_cursor ORDER BY name").fetchall()
        assert ("published", last) in [(name, value) for name, value, _ in marks]
        with listener.transaction():
            for published in (last, last - 1, 0):  # the mark only moves forward
                assert listener.execute(
                    "SELECT count(*) FROM pgevents_assign(%s, %s)", (BATCH, published)
                ).fetchone() == (0,)
            xid = listener.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()
        assert xid == (None,)
        assert listener.execute("SELECT name, value, xmin::text FROM pgevents_cursor ORDER BY name").fetchall() == marks
