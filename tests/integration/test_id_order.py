"""The order of ids, as docs/delivery.md states it: each sequencer pass numbers what has
committed since the previous one, in insertion order; across passes, in the order commits
became visible. Driven by calling the sequencer directly, on a database no listener uses."""

from __future__ import annotations

import psycopg


def _pass(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT event_id, event_frame::jsonb->'row'->>'name' FROM pgevents_assign(100, 0)").fetchall()
    return {name: event_id for event_id, name in rows}


def test_ids_follow_insertion_order_within_a_pass_and_visibility_across_passes(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    with psycopg.connect(isolated_db) as a, psycopg.connect(isolated_db) as b:
        a.execute("INSERT INTO people (name) VALUES ('A1')")  # inserted first
        b.execute("INSERT INTO people (name) VALUES ('B1')")
        b.commit()  # committed first
        a.commit()
        one_pass = _pass(iso_pg)
        assert one_pass["A1"] < one_pass["B1"]  # both in one pass: insertion order

        a.execute("INSERT INTO people (name) VALUES ('A2')")
        b.execute("INSERT INTO people (name) VALUES ('B2')")
        b.commit()
        first = _pass(iso_pg)  # sees B2 only
        a.commit()
        second = _pass(iso_pg)
        assert list(first) == ["B2"] and list(second) == ["A2"]
        assert max(one_pass.values()) < first["B2"] < second["A2"]  # across passes: visibility order
