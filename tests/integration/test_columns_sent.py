"""Which columns a watch sends is decided when its triggers are built, and holds until the next sync.

Checked in the log itself (what every client is sent is built from it), on real PostgreSQL:
a column added later — ``password_hash`` or an ordinary one — is not sent until a sync, and a
sensitive one not even then; an UPDATE that changes only columns a watch does not send
sends nothing; tables with columns that have no equality operator can be updated; column
names that need quoting survive the trigger's arguments.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql

from pgevents.core.sql import TriggerSpec
from pgevents.setup import installation

_n = itertools.count()


@pytest.fixture
def table(pg: psycopg.Connection) -> Iterator[str]:
    name = f"sent_{next(_n)}"
    yield name
    pg.execute(psql.SQL("DROP TABLE IF EXISTS {}").format(psql.Identifier(name)))


def watch(pg: psycopg.Connection, table: str, **options: Any) -> TriggerSpec:
    with pg.cursor() as cur:
        spec = installation.build_spec(cur, table=table, channel="demo", **options)
        installation.install(cur, spec)
    return spec


def head(pg: psycopg.Connection) -> int:
    row = pg.execute("SELECT coalesce(max(seq), 0) FROM pgevents_event").fetchone()
    assert row is not None
    return int(row[0])


def logged(pg: psycopg.Connection, table: str, after: int) -> list[tuple[str, dict[str, Any] | None, Any]]:
    """(op, row, old) of the events ``table`` logged after seq ``after``."""
    return [
        (op, new, old)
        for op, new, old in pg.execute(
            'SELECT op, "row", old FROM pgevents_event WHERE seq > %s AND table_name = %s ORDER BY seq',
            (after, table),
        ).fetchall()
    ]


def state(pg: psycopg.Connection, table: str) -> str:
    """What ``pgevents_sync`` and ``check --database`` see: the installed triggers against a
    spec built from the table as it is now."""
    with pg.cursor() as cur:
        return installation.trigger_state(cur, installation.build_spec(cur, table=table, channel="demo"))


def test_a_column_added_later_is_not_sent_until_a_sync_decides(pg: psycopg.Connection, table: str) -> None:
    t = psql.Identifier(table)
    pg.execute(psql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, name text)").format(t))
    watch(pg, table)
    start = head(pg)
    assert state(pg, table) == "installed"
    pg.execute(psql.SQL("ALTER TABLE {} ADD COLUMN password_hash text, ADD COLUMN nickname text").format(t))
    assert state(pg, table) == "outdated"  # pgevents_sync (and migrate) will rebuild it
    pg.execute(psql.SQL("INSERT INTO {} (name, password_hash, nickname) VALUES ('a', 'h1', 'n1')").format(t))
    # changing only a column the watch does not send yet is no event; a sent one is (the fence)
    pg.execute(psql.SQL("UPDATE {} SET nickname = 'n2', password_hash = 'h2'").format(t))
    pg.execute(psql.SQL("UPDATE {} SET name = 'b'").format(t))
    assert logged(pg, table, start) == [
        ("INSERT", {"id": 1, "name": "a"}, None),
        ("UPDATE", {"id": 1, "name": "b"}, {"id": 1, "name": "a"}),
    ]

    start = head(pg)
    synced = watch(pg, table)  # what a sync does: build from the table as it is now, install
    assert synced.columns == ("id", "name", "nickname") and synced.hidden == ("password_hash",)
    assert state(pg, table) == "installed"
    pg.execute(psql.SQL("UPDATE {} SET nickname = 'n3', password_hash = 'h3'").format(t))
    pg.execute(psql.SQL("UPDATE {} SET password_hash = 'h4'").format(t))  # hidden only: nothing
    pg.execute(psql.SQL("DELETE FROM {}").format(t))
    assert logged(pg, table, start) == [
        ("UPDATE", {"id": 1, "name": "b", "nickname": "n3"}, {"id": 1, "name": "b", "nickname": "n2"}),
        ("DELETE", None, {"id": 1, "name": "b", "nickname": "n3"}),
    ]


def test_an_update_of_unsent_columns_only_sends_nothing(pg: psycopg.Connection, table: str) -> None:
    t = psql.Identifier(table)
    pg.execute(psql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, name text, secret_token text, note text)").format(t))
    watch(pg, table, exclude=["note"])
    pg.execute(psql.SQL("INSERT INTO {} (name, secret_token, note) VALUES ('a', 's', 'n')").format(t))
    start = head(pg)
    pg.execute(psql.SQL("UPDATE {} SET note = 'excluded'").format(t))
    pg.execute(psql.SQL("UPDATE {} SET secret_token = 'sensitive'").format(t))
    pg.execute(psql.SQL("UPDATE {} SET name = name").format(t))  # no change at all
    pg.execute(psql.SQL("UPDATE {} SET name = 'b', note = 'both'").format(t))
    assert logged(pg, table, start) == [("UPDATE", {"id": 1, "name": "b"}, {"id": 1, "name": "a"})]


def test_update_columns_must_be_columns_the_watch_sends(pg: psycopg.Connection, table: str) -> None:
    pg.execute(psql.SQL("CREATE TABLE {} (id int, name text, api_token text)").format(psql.Identifier(table)))
    with pytest.raises(installation.WatchError, match=r"api_token .* not sent"):
        watch(pg, table, update_columns=["api_token"])
    with pytest.raises(installation.WatchError, match="both included and excluded: name"):
        watch(pg, table, include=["name"], exclude=["name"])
    assert watch(pg, table, include=["id", "api_token"]).columns == ("id", "api_token")  # named: sent


def test_columns_without_an_equality_operator_can_be_updated(pg: psycopg.Connection, table: str) -> None:
    """``OLD.* IS DISTINCT FROM NEW.*`` needs "=" for every column: json and point have none,
    and every UPDATE of such a table failed. Rows are now compared by their binary image."""
    t = psql.Identifier(table)
    pg.execute(psql.SQL("CREATE TABLE {} (id int PRIMARY KEY, doc json, spot point)").format(t))
    watch(pg, table)
    pg.execute(psql.SQL("INSERT INTO {} VALUES (1, '{{\"a\": 1}}', '(1,2)')").format(t))
    start = head(pg)
    pg.execute(psql.SQL("UPDATE {} SET doc = '{{\"a\": 1}}'").format(t))  # the same value: nothing
    pg.execute(psql.SQL("UPDATE {} SET doc = '{{\"a\": 2}}'").format(t))
    pg.execute(psql.SQL("UPDATE {} SET spot = '(3,4)'").format(t))
    assert [(op, new["doc"], new["spot"]) for op, new, _ in logged(pg, table, start)] == [  # type: ignore[index]
        ("UPDATE", {"a": 2}, "(1,2)"),
        ("UPDATE", {"a": 2}, "(3,4)"),
    ]


def test_column_names_that_need_quoting_survive_the_trigger_arguments(pg: psycopg.Connection, table: str) -> None:
    awkward = ['we"ird', "com,ma", "br{ace}", "back\\slash", "NULL", "sp ace", "ünï"]
    columns = psql.SQL(", ").join(psql.SQL("{} text").format(psql.Identifier(c)) for c in [*awkward, "password"])
    pg.execute(psql.SQL("CREATE TABLE {} ({})").format(psql.Identifier(table), columns))
    watch(pg, table)
    start = head(pg)
    names = psql.SQL(", ").join(psql.Identifier(c) for c in [*awkward, "password"])
    values = [f"v{i}" for i in range(len(awkward) + 1)]
    pg.execute(psql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        psql.Identifier(table), names, psql.SQL(", ").join(psql.Literal(v) for v in values)
    ))  # fmt: skip
    assert logged(pg, table, start) == [("INSERT", dict(zip(awkward, values, strict=False)), None)]
