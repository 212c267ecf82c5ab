"""The statement path of the trigger function, durable and not, on real PostgreSQL.

A watch's INSERT and DELETE triggers log a statement's rows in one query, and only a row
with a column added since the install (in neither of the trigger's lists) takes the slow
path that keeps the sent columns. Checked here for one row and many, both kinds of watch:
what reaches the log or the transient table is exactly the sent columns (no value of a
hidden or newly added column is anywhere in either table); a statement that writes no row
logs nothing and wakes nobody; and a watched table may name its columns like the function's
own variables and aliases.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql as psql

from pgevents.setup import installation

TABLE = "stmt_people"


def _watch(conn: psycopg.Connection, table: str = TABLE, **options: Any) -> None:
    with conn.cursor() as cur:
        installation.install(cur, installation.build_spec(cur, table=table, channel="demo", **options))


def _logged(conn: psycopg.Connection, durable: bool, table: str = TABLE) -> list[tuple[str, Any, Any]]:
    """(op, row, old) of every event of ``table``, in the order logged."""
    source = "pgevents_event" if durable else "pgevents_transient"
    return [
        (op, row, old)
        for op, row, old in conn.execute(
            psql.SQL('SELECT op, "row", old FROM {} WHERE table_name = %s ORDER BY seq').format(
                psql.Identifier(source)
            ),
            (table,),
        ).fetchall()
    ]


def _everything_logged(conn: psycopg.Connection) -> str:
    """The text of every row in the log and the transient table."""
    row = conn.execute(
        "SELECT coalesce(string_agg(t::text, ' '), '') FROM"
        " (SELECT e::text AS t FROM pgevents_event e UNION ALL SELECT x::text FROM pgevents_transient x) s"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _wake_ups(spy: psycopg.Connection, writer: psycopg.Connection) -> list[str]:
    return [n.payload for n in spy.notifies(timeout=0.3) if n.pid == writer.info.backend_pid]


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "non-durable"])
def test_columns_added_since_the_install_are_left_out_of_one_row_and_many(isolated_db: str, durable: bool) -> None:
    with psycopg.connect(isolated_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name text, note text, password text)")
        _watch(conn, exclude=["note"], durable=durable)  # sent: id, name; hidden: note, password
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN api_token text, ADD COLUMN nickname text")
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, 'one', 'NOTE-1', 'PW-1', 'TOKEN-1', 'NICK-1')")
        conn.execute(
            f"INSERT INTO {TABLE} SELECT g, 'n' || g, 'NOTE-' || g, 'PW-' || g, 'TOKEN-' || g, 'NICK-' || g"
            " FROM generate_series(2, 5) g"
        )
        conn.execute(f"DELETE FROM {TABLE} WHERE id = 1")
        conn.execute(f"DELETE FROM {TABLE} WHERE id > 1")
        names = ["one", "n2", "n3", "n4", "n5"]
        assert _logged(conn, durable) == [
            *[("INSERT", {"id": i, "name": name}, None) for i, name in enumerate(names, 1)],
            *[("DELETE", None, {"id": i, "name": name}) for i, name in enumerate(names, 1)],
        ]
        text = _everything_logged(conn)
        assert not any(secret in text for secret in ("NOTE-", "PW-", "TOKEN-", "NICK-"))
        assert "n5" in text  # the search looks where the events are

        # a sync decides: the ordinary column is sent from then on, the sensitive one is not
        _watch(conn, exclude=["note"], durable=durable)
        conn.execute(f"INSERT INTO {TABLE} SELECT g, 'm' || g, 'x', 'x', 'TOKEN', 'nick' FROM generate_series(6, 7) g")
        assert _logged(conn, durable)[-2:] == [
            ("INSERT", {"id": g, "name": f"m{g}", "nickname": "nick"}, None) for g in (6, 7)
        ]


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "non-durable"])
def test_a_statement_that_writes_no_row_logs_nothing_and_wakes_nobody(isolated_db: str, durable: bool) -> None:
    with (
        psycopg.connect(isolated_db, autocommit=True) as writer,
        psycopg.connect(isolated_db, autocommit=True) as spy,
    ):
        writer.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name text)")
        _watch(writer, durable=durable)
        writer.execute(f"ALTER TABLE {TABLE} ADD COLUMN api_token text")  # the slow path's statements too
        spy.execute("LISTEN pgevents")
        writer.execute(f"INSERT INTO {TABLE} SELECT g, 'x', 't' FROM generate_series(1, 3) g WHERE false")
        writer.execute(f"DELETE FROM {TABLE}")  # the table is empty
        writer.execute(f"INSERT INTO {TABLE} VALUES (1, 'x', 't') ON CONFLICT DO NOTHING")
        writer.execute(f"INSERT INTO {TABLE} VALUES (1, 'y', 't') ON CONFLICT DO NOTHING")  # conflicts: no row
        writer.execute(f"DELETE FROM {TABLE} WHERE id = 2")
        assert _logged(writer, durable) == [("INSERT", {"id": 1, "name": "x"}, None)]
        # no listener polls: the one statement that wrote a row woke it, and only that one
        assert _wake_ups(spy, writer) == ["" if durable else "t"]


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "non-durable"])
def test_a_watched_table_may_name_its_columns_like_the_function_s_variables(isolated_db: str, durable: bool) -> None:
    names = ["r", "t", "j", "s", "cfg", "cols", "sent", "others", "known", "written", "durable", "new_row", "row"]
    row = {name: f"v-{name}" for name in names}
    with psycopg.connect(isolated_db, autocommit=True) as conn:
        columns = psql.SQL(", ").join(psql.SQL("{} text").format(psql.Identifier(n)) for n in names)
        conn.execute(psql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {})").format(psql.Identifier(TABLE), columns))
        _watch(conn, durable=durable)
        values = psql.SQL(", ").join(psql.Literal(v) for v in row.values())
        conn.execute(psql.SQL("INSERT INTO {} VALUES (1, {}), (2, {})").format(psql.Identifier(TABLE), values, values))
        conn.execute(f"UPDATE {TABLE} SET r = 'changed' WHERE id = 1")
        conn.execute(f"DELETE FROM {TABLE}")
        changed = {"id": 1, **row, "r": "changed"}
        events = _logged(conn, durable)
        assert events[:3] == [
            ("INSERT", {"id": 1, **row}, None),
            ("INSERT", {"id": 2, **row}, None),
            ("UPDATE", changed, {"id": 1, **row}),
        ]
        # one statement deletes both rows, in the order it finds them (the update moved row 1)
        assert sorted(events[3:], key=lambda e: e[2]["id"]) == [
            ("DELETE", None, changed),
            ("DELETE", None, {"id": 2, **row}),
        ]


def test_a_writer_s_search_path_does_not_reach_the_statement_path(isolated_db: str) -> None:
    """The statement path and its helper resolve every function and operator in ``pg_catalog``
    whatever the writer's ``search_path``: a schema placed before it with a ``jsonb - text[]``
    operator and a ``jsonb_each`` that forge rows changes nothing in what is logged, on the
    usual path nor on the slow one (a column added since the install)."""
    with psycopg.connect(isolated_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name text, password text)")
        _watch(conn)
        conn.execute("CREATE SCHEMA evil")
        conn.execute(
            "CREATE FUNCTION evil.forge(jsonb, text[]) RETURNS jsonb LANGUAGE sql"
            ' AS $$ SELECT \'{"name": "forged"}\'::jsonb $$'
        )
        conn.execute("CREATE OPERATOR evil.- (LEFTARG = jsonb, RIGHTARG = text[], FUNCTION = evil.forge)")
        conn.execute(
            "CREATE FUNCTION evil.jsonb_each(jsonb, OUT key text, OUT value jsonb) RETURNS SETOF record"
            " LANGUAGE sql AS $$ SELECT 'name', '\"forged\"'::jsonb $$"
        )
        conn.execute("SET search_path = evil, pg_catalog, public")
        assert conn.execute("SELECT '{\"a\": 1}'::jsonb - '{a}'::text[]").fetchone() == ({"name": "forged"},)
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, 'one', 'PW')")
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN api_token text")
        conn.execute(f"INSERT INTO {TABLE} SELECT g, 'n' || g, 'PW', 'TOKEN' FROM generate_series(2, 3) g")
        conn.execute("RESET search_path")
        assert _logged(conn, True) == [
            ("INSERT", {"id": i, "name": n}, None) for i, n in enumerate(["one", "n2", "n3"], 1)
        ]
