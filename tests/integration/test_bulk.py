"""One statement, many rows: a watch's INSERT and DELETE triggers are statement triggers
(trigger function v4) that log every row the statement wrote in one ``INSERT … SELECT`` and
wake the listener once. The contract is the one of single rows: one event per row, in the
statement's order, ids strictly increasing with each ``prev`` the one before, hidden and
newly added columns left out."""

from __future__ import annotations

import psycopg

from pgevents.setup import installation
from tests.integration.test_handover import RecordingLayer, _listener, _wait_for, running


def _logged(
    conn: psycopg.Connection, after: int
) -> list[tuple[str, dict[str, object] | None, dict[str, object] | None]]:
    return [
        (op, row, old)
        for op, row, old in conn.execute(
            'SELECT op, "row", old FROM pgevents_event WHERE seq > %s AND channel = %s ORDER BY seq', (after, "people")
        ).fetchall()
    ]


def _seq(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM pgevents_event").fetchone()
    return int(row[0]) if row else 0


def test_a_statement_logs_each_row_in_order_and_wakes_the_listener_once(isolated_db: str) -> None:
    with (
        psycopg.connect(isolated_db, autocommit=True) as writer,
        psycopg.connect(isolated_db, autocommit=True) as spy,
    ):
        spy.execute("LISTEN pgevents")
        start = _seq(writer)
        writer.execute("INSERT INTO people (name) SELECT 'bulk-' || g FROM generate_series(1, 1000) g")
        writer.execute("INSERT INTO people (name) SELECT 'none' WHERE false")  # no row: no event
        inserted = _logged(writer, start)
        assert [row["name"] for _, row, _ in inserted if row] == [f"bulk-{g}" for g in range(1, 1001)]
        assert {(op, old) for op, _, old in inserted} == {("INSERT", None)}

        # a column added since the watch was installed is not sent until a sync decides
        writer.execute("ALTER TABLE people ADD COLUMN api_token text")
        start = _seq(writer)
        writer.execute("DELETE FROM people WHERE name LIKE 'bulk-%'")
        deleted = _logged(writer, start)
        assert len(deleted) == 1000 and {(op, row) for op, row, _ in deleted} == {("DELETE", None)}
        assert all(old is not None and "api_token" not in old and old["name"] for _, _, old in deleted)
        assert {key for _, _, old in deleted if old for key in old} == {
            key for _, row, _ in inserted if row for key in row
        }
        notes = [note for note in spy.notifies(timeout=0.3) if note.pid == writer.info.backend_pid]
        assert len(notes) == 2  # one wake-up per statement that wrote rows


def test_a_bulk_statement_is_delivered_once_in_id_order(isolated_db: str) -> None:
    layer = RecordingLayer()
    with running(_listener(isolated_db, layer, linger=0.02)), psycopg.connect(isolated_db, autocommit=True) as writer:
        with writer.transaction():
            writer.execute("INSERT INTO people (name) VALUES ('single')")
            writer.execute("INSERT INTO people (name) SELECT 'bulk-' || g FROM generate_series(1, 2000) g")
            writer.execute("INSERT INTO people (name) VALUES ('single'), ('conflict') ON CONFLICT DO NOTHING")
        _wait_for(lambda: len(layer.events) >= 2003, "every row of the transaction")
    expected = ["single", *(f"bulk-{g}" for g in range(1, 2001)), "single", "conflict"]
    assert layer.names() == expected
    ids = [e["id"] for e in layer.events]
    assert ids == sorted(set(ids)) and all(e["prev"] == p for e, p in zip(layer.events[1:], ids, strict=False))


def test_a_non_durable_watch_takes_a_statement_s_rows_too(isolated_db: str) -> None:
    with psycopg.connect(isolated_db, autocommit=True) as owner:
        owner.execute("CREATE TABLE fleeting (id serial PRIMARY KEY, name text)")
        with owner.cursor() as cur:
            spec = installation.build_spec(cur, table="fleeting", channel="t.fleeting", durable=False)
            installation.install(cur, spec)
        owner.execute("INSERT INTO fleeting (name) SELECT 'f-' || g FROM generate_series(1, 300) g")
        owner.execute("DELETE FROM fleeting WHERE id <= 100")
        rows = owner.execute(
            "SELECT op, coalesce(\"row\", old)->>'name' FROM pgevents_transient ORDER BY seq"
        ).fetchall()
    assert rows == [("INSERT", f"f-{g}") for g in range(1, 301)] + [("DELETE", f"f-{g}") for g in range(1, 101)]


def test_a_partitioned_table_keeps_row_triggers_so_a_partition_written_directly_is_seen(isolated_db: str) -> None:
    with psycopg.connect(isolated_db, autocommit=True) as owner:
        owner.execute("CREATE TABLE parted (id int, name text) PARTITION BY RANGE (id)")
        owner.execute("CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100)")
        with owner.cursor() as cur:
            spec = installation.build_spec(cur, table="parted", channel="t.parted")
            installation.install(cur, spec)
            assert installation.trigger_state(cur, spec) == "installed"
        start = _seq(owner)
        owner.execute("INSERT INTO parted VALUES (1, 'through the parent'), (2, 'twice')")
        owner.execute("INSERT INTO parted_low VALUES (3, 'into the partition')")
        owner.execute("DELETE FROM parted_low WHERE id = 2")
        logged = owner.execute(
            "SELECT op, coalesce(\"row\", old)->>'name' FROM pgevents_event WHERE seq > %s AND channel = 't.parted'"
            " ORDER BY seq",
            (start,),
        ).fetchall()
    assert logged == [
        ("INSERT", "through the parent"),
        ("INSERT", "twice"),
        ("INSERT", "into the partition"),
        ("DELETE", "twice"),
    ]
