"""``notify_referencing``: renaming a parent row tells the channels of the tables that point at
it, with ids only — checked against real PostgreSQL, with hostile identifiers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql

from pgevents.core import sql
from pgevents.operations import Watch
from pgevents.setup import installation
from tests.support import Client, Stack, run

SCHEMA = 'we"ird sch;ema'
PARENT = 'Au\'thors "x"'
CHILD = "bo;oks"
FK = 'au thor"id'
KEY = 'i"d'


@pytest.fixture
def hostile(pg: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A parent and a child table whose every identifier needs quoting."""
    s = psql.Identifier(SCHEMA)
    pg.execute(psql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(s))
    pg.execute(psql.SQL("CREATE SCHEMA {}").format(s))
    pg.execute(
        psql.SQL("CREATE TABLE {}.{} ({} serial PRIMARY KEY, name text, secret_token text)").format(
            s, psql.Identifier(PARENT), psql.Identifier(KEY)
        )
    )
    pg.execute(
        psql.SQL("CREATE TABLE {}.{} (id serial PRIMARY KEY, title text, {} int REFERENCES {}.{})").format(
            s, psql.Identifier(CHILD), psql.Identifier(FK), s, psql.Identifier(PARENT)
        )
    )
    yield pg
    pg.execute(psql.SQL("DROP SCHEMA {} CASCADE").format(s))


def _events_after(pg: psycopg.Connection, seq: int) -> list[dict[str, Any]]:
    rows = pg.execute(
        'SELECT channel, op, schema_name, table_name, "row", old FROM pgevents_event WHERE seq > %s ORDER BY seq',
        (seq,),
    ).fetchall()
    keys = ("channel", "op", "schema", "table", "row", "old")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _head(pg: psycopg.Connection) -> int:
    row = pg.execute("SELECT coalesce(max(seq), 0) FROM pgevents_event").fetchone()
    assert row is not None
    return int(row[0])


def test_update_of_a_parent_emits_one_ids_only_event_per_referencing_channel(hostile: psycopg.Connection) -> None:
    pg = hostile
    with pg.cursor() as cur:
        spec = installation.build_spec(
            cur, table=PARENT, schema=SCHEMA, channel="authors", notify_referencing=[{"table": CHILD, "schema": SCHEMA}]
        )
        installation.install(cur, spec)
        assert installation.trigger_state(cur, spec) == "installed"
    assert spec.referencing == (sql.Reference(channel=CHILD, table=CHILD, schema=SCHEMA, columns=(FK,), keys=(KEY,)),)
    parent = psql.SQL("{}.{}").format(psql.Identifier(SCHEMA), psql.Identifier(PARENT))
    child = psql.SQL("{}.{}").format(psql.Identifier(SCHEMA), psql.Identifier(CHILD))
    row = pg.execute(
        psql.SQL("INSERT INTO {} (name, secret_token) VALUES ('Ann', 's3cret') RETURNING {}").format(
            parent, psql.Identifier(KEY)
        )
    ).fetchone()
    assert row is not None
    author = row[0]
    for title in ("a", "b", "c"):
        pg.execute(
            psql.SQL("INSERT INTO {} (title, {}) VALUES (%s, %s)").format(child, psql.Identifier(FK)), (title, author)
        )

    start = _head(pg)
    pg.execute(psql.SQL("UPDATE {} SET name = 'Anne'").format(parent))
    own, ref = _events_after(pg, start)

    assert own["channel"] == "authors" and own["op"] == "UPDATE" and own["row"]["name"] == "Anne"
    assert "secret_token" not in own["row"]  # the sensitive column stays hidden
    # One event for three children, naming the child table and carrying the key only.
    assert ref == {"channel": CHILD, "op": "UPDATE", "schema": SCHEMA, "table": CHILD, "row": {FK: author}, "old": None}

    start = _head(pg)
    pg.execute(psql.SQL("INSERT INTO {} (name) VALUES ('Bob')").format(parent))
    pg.execute(psql.SQL("DELETE FROM {} WHERE name = 'Bob'").format(parent))
    assert [e["op"] for e in _events_after(pg, start)] == ["INSERT", "DELETE"]  # only UPDATEs propagate


def test_non_durable_watch_notifies_the_referencing_channel(hostile: psycopg.Connection) -> None:
    pg = hostile
    with pg.cursor() as cur:
        spec = installation.build_spec(
            cur, table=PARENT, schema=SCHEMA, channel="authors", durable=False,
            notify_referencing=[{"table": CHILD, "schema": SCHEMA, "channel": "books"}],
        )  # fmt: skip
        installation.install(cur, spec)
    parent = psql.SQL("{}.{}").format(psql.Identifier(SCHEMA), psql.Identifier(PARENT))
    pg.execute(psql.SQL("INSERT INTO {} (name) VALUES ('Ann')").format(parent))
    # Read the transient table inside the writer's transaction, before any listener can take
    # the rows, then roll back.
    with pg.transaction(force_rollback=True):
        pg.execute(psql.SQL("UPDATE {} SET name = 'Anne'").format(parent))
        rows = pg.execute(
            'SELECT channel, op, schema_name, table_name, "row", old FROM pgevents_transient'
            " WHERE table_name IN (%s, %s) ORDER BY seq",
            (PARENT, CHILD),
        ).fetchall()
    keys = ("channel", "op", "schema", "table", "row", "old")
    frames = [dict(zip(keys, row, strict=True)) for row in rows]
    by_channel = {p["channel"]: p for p in frames}
    assert set(by_channel) == {"authors", "books"}
    assert by_channel["books"]["table"] == CHILD and by_channel["books"]["schema"] == SCHEMA
    assert by_channel["books"]["op"] == "UPDATE" and by_channel["books"]["old"] is None
    assert list(by_channel["books"]["row"]) == [FK]
    assert "secret_token" not in by_channel["authors"]["row"]


def test_references_are_checked_against_the_catalog(hostile: psycopg.Connection) -> None:
    pg = hostile
    parent = psql.SQL("{}.{}").format(psql.Identifier(SCHEMA), psql.Identifier(PARENT))
    child = psql.SQL("{}.{}").format(psql.Identifier(SCHEMA), psql.Identifier(CHILD))
    with pg.cursor() as cur:

        def build(ref: Any, **kw: Any) -> sql.TriggerSpec:
            return installation.build_spec(
                cur, table=PARENT, schema=SCHEMA, channel="authors", notify_referencing=[ref], **kw
            )

        with pytest.raises(installation.WatchError, match="no foreign key"):
            build({"table": PARENT, "schema": SCHEMA})
        with pytest.raises(installation.WatchError, match="needs 'table'"):
            build({"tabel": CHILD})
        with pytest.raises(installation.WatchError, match="no foreign key"):
            build({"table": CHILD, "schema": SCHEMA, "columns": ["title"]})
        with pytest.raises(installation.WatchError, match="must include UPDATE"):
            build({"table": CHILD, "schema": SCHEMA}, events=["INSERT"])
        # Without a declared foreign key, columns and keys pair up explicitly.
        explicit = build({"table": CHILD, "schema": SCHEMA, "columns": ["title"], "keys": ["name"]})
        assert explicit.referencing[0].columns == ("title",) and explicit.referencing[0].keys == ("name",)
        with pytest.raises(installation.WatchError, match="excluded column"):
            build({"table": CHILD, "schema": SCHEMA, "columns": ["title"], "keys": ["secret_token"]})

        pg.execute(psql.SQL("ALTER TABLE {} ADD COLUMN editor int REFERENCES {}").format(child, parent))
        with pytest.raises(installation.WatchError, match="2 foreign keys"):
            build({"table": CHILD, "schema": SCHEMA})
        picked = build({"table": CHILD, "schema": SCHEMA, "columns": ["editor"]})
        assert picked.referencing[0].columns == ("editor",) and picked.referencing[0].keys == (KEY,)


def test_function_is_v4_and_plain_watches_behave_as_before(pg: psycopg.Connection) -> None:
    row = pg.execute("SELECT obj_description('pgevents_notify()'::regprocedure, 'pg_proc')").fetchone()
    assert row == (f"pgevents v{sql.SCHEMA_VERSION}",) and sql.SCHEMA_VERSION == 4
    start = _head(pg)
    pg.execute("INSERT INTO people (name) VALUES ('plain')")
    pg.execute("UPDATE people SET age = 3 WHERE name = 'plain'")
    events = _events_after(pg, start)
    assert [(e["channel"], e["op"]) for e in events] == [("people", "INSERT"), ("people", "UPDATE")]


def test_watch_operation_round_trips_the_option() -> None:
    op = Watch(table="authors", channel="authors", notify_referencing=["books", {"table": "reviews", "channel": "r"}])
    path, args, kwargs = op.deconstruct()
    assert path == "pgevents.operations.Watch" and args == []
    assert kwargs["notify_referencing"] == ["books", {"table": "reviews", "channel": "r"}]
    assert "notify_referencing" not in Watch(table="t", channel="c").deconstruct()[2]
    spec = sql.TriggerSpec(
        table="authors", channel="authors", referencing=(sql.Reference("books", "books", ("author_id",), ("id",)),)
    )
    assert spec.digest != sql.TriggerSpec(table="authors", channel="authors").digest
    assert spec.config()["referencing"] == [
        {"channel": "books", "schema": "public", "table": "books", "columns": ["author_id"], "keys": ["id"]}
    ]
    assert '"referencing": [{' in sql.render(spec.create_statements())  # passed to the function as JSON


def test_renaming_an_author_reaches_books_subscribers(stack: Stack, pg: psycopg.Connection) -> None:
    """The demo's watches, end to end over the WebSocket."""
    author = pg.execute("INSERT INTO authors (name) VALUES ('Ray') RETURNING id").fetchone()
    assert author is not None

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/books/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO books (title, author_id) VALUES ('One', %s), ('Two', %s)", (author[0], author[0]))
            pg.execute("UPDATE authors SET name = 'Raymond' WHERE id = %s", (author[0],))
            first, second, event = await client.events(3)
            pg.execute("INSERT INTO books (title, author_id) VALUES ('Three', %s)", (author[0],))
            (fence,) = await client.events(1)  # one event for the rename, not one per book
            assert fence["op"] == "INSERT" and fence["row"]["title"] == "Three"
        assert [first["op"], second["op"]] == ["INSERT", "INSERT"]
        assert event["op"] == "UPDATE" and event["table"] == "books" and event["old"] is None
        assert event["row"] == {"author_id": author[0]}

    run(scenario())
