"""The sequencer keeps its speed on a long-lived connection.

PL/pgSQL caches the plans of a function's statements per session. The listener polls
``pgevents_assign`` on one connection for as long as it runs, usually starting on an empty
log: a generic plan chosen then (before 0006) scanned the whole log once per pending event,
and the next backlog stalled delivery for seconds per batch. Since 0009 the plans are
generic from the first call, with every path but the log's indexes switched off. The signal
checked here is the work done, not the time taken: the tuples the call read from the log by
sequential scan or fetched through an index, which PostgreSQL counts per transaction
(``pg_stat_xact_user_tables``).

And it numbers alike however the work is cut: in batches of any size, and with a second
sequencer waiting for the first.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.support import wait_until

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


def _append(conn: psycopg.Connection, *channels: str) -> None:
    conn.execute(
        'INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row")'
        " SELECT c, 'INSERT', 'public', 't', jsonb_build_object('n', n) FROM unnest(%s::text[]) WITH ORDINALITY AS u(c, n)",
        (list(channels),),
    )


def _index_fetches(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relname = 'pgevents_event'"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_plan_made_on_a_drained_log_positions_a_backlog_without_walking_it(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    """What ``ANALYZE`` sees once the listener has drained the log: many positioned rows, none
    pending. A plan made then (0009) found each row to position by walking every pending row
    and numbering the batch again per row: seconds per batch behind a backlog. The work of a
    call is bounded by its batch, not by the backlog."""
    _append(iso_pg, *["a"] * BATCH)
    assert len(iso_pg.execute("SELECT event_id FROM pgevents_assign(%s, 0)", (BATCH,)).fetchall()) == BATCH
    iso_pg.execute("ANALYZE pgevents_event")
    with psycopg.connect(isolated_db) as listener:
        for _ in range(8):
            assert listener.execute("SELECT count(*) FROM pgevents_assign(%s, 0)", (BATCH,)).fetchone() == (0,)
            listener.commit()
        _append(iso_pg, *["a", "b"] * (BURST // 2))
        for _ in range(BURST // BATCH):
            before = _index_fetches(listener)
            rows = listener.execute("SELECT event_id FROM pgevents_assign(%s, 0)", (BATCH,)).fetchall()
            fetched = _index_fetches(listener) - before
            listener.commit()
            assert len(rows) == BATCH
            assert fetched <= 3 * BATCH, f"the sequencer fetched {fetched:,} log rows to position {BATCH}"


def _positions(conn: psycopg.Connection) -> list[tuple[int, int | None, str]]:
    return [
        (i, p, c)
        for i, p, c in conn.execute(
            "SELECT id, prev_id, channel FROM pgevents_event WHERE id IS NOT NULL ORDER BY id"
        ).fetchall()
    ]


def _assert_linked(positions: list[tuple[int, int | None, str]]) -> None:
    """Ids 1..n without gap, each event linked to the previous one of its channel."""
    assert [i for i, _, _ in positions] == list(range(1, len(positions) + 1))
    last: dict[str, int] = {}
    for event_id, prev, channel in positions:
        assert prev == last.get(channel), (event_id, channel)
        last[channel] = event_id


def test_batches_of_any_size_number_and_link_like_one_pass(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """A batch boundary inside a channel's run: the first event of each channel in a batch is
    linked to that channel's last positioned event."""
    channels = ["a", "b", "a", "a", "c", "b", "a", "c", "c"]
    for size in (1, 2, 4):
        iso_pg.execute("TRUNCATE pgevents_event")
        iso_pg.execute("UPDATE pgevents_cursor SET value = 0")
        _append(iso_pg, *channels)
        returned = []
        while rows := iso_pg.execute("SELECT * FROM pgevents_assign(%s, 0)", (size,)).fetchall():
            assert len(rows) <= size
            returned += [(i, p, c) for i, p, c, _ in rows]
        assert returned == _positions(iso_pg)
        assert [c for _, _, c in returned] == channels
        _assert_linked(returned)
        assert iso_pg.execute("SELECT value FROM pgevents_cursor WHERE name = 'assigned'").fetchone() == (
            len(channels),
        )


def _waiting_for_a_lock(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row == ("Lock",)


def test_two_sequencers_at_once_number_consecutively(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """Only one listener is active, but two that ever ran at once must not give an id twice,
    skip one or link across each other: the second waits for the first's lock, then starts
    after its positions — also when what it saw pending was taken meanwhile."""
    _append(iso_pg, "a", "b", "a")
    with psycopg.connect(isolated_db) as first, psycopg.connect(isolated_db, autocommit=True) as second:
        second_pid = second.info.backend_pid
        for more in (("b", "a"), ()):  # events that commit while the second waits; then none
            taken = first.execute("SELECT event_id FROM pgevents_assign(500, 0)").fetchall()
            assert taken
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(lambda: second.execute("SELECT event_id FROM pgevents_assign(500, 0)").fetchall())
                wait_until(lambda: _waiting_for_a_lock(iso_pg, second_pid), what="the second sequencer to wait")
                if more:
                    _append(iso_pg, *more)
                first.commit()
                found = waiting.result(timeout=30)
            assert [i for (i,) in found] == list(range(taken[-1][0] + 1, taken[-1][0] + 1 + len(more)))
            if more:
                _append(iso_pg, "c")  # pending again for the first's next pass
    positions = _positions(iso_pg)
    assert [c for _, _, c in positions] == ["a", "b", "a", "b", "a", "c"]
    _assert_linked(positions)
    assert iso_pg.execute("SELECT value FROM pgevents_cursor WHERE name = 'assigned'").fetchone() == (len(positions),)
