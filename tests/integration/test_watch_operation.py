"""``pgevents.operations.Watch`` against real PostgreSQL: hostile identifiers, options, reversal."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.db.migrations.state import ProjectState

from pgevents.operations import Watch
from tests.support import Client, Stack, run

SCHEMA = 'odd "schema"'
TABLE = 'We\'ird "Table"; DROP TABLE people; --'


@pytest.fixture
def hostile_table(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(SCHEMA)))
        conn.execute(
            psycopg.sql.SQL(
                'CREATE TABLE {}.{} (id serial primary key, "Name" text, secret_note text, api_token text, n int)'
            ).format(psycopg.sql.Identifier(SCHEMA), psycopg.sql.Identifier(TABLE))
        )
    yield TABLE
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(SCHEMA)))


def _triggers(db_url: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
            " AND NOT t.tgisinternal ORDER BY 1",
            (SCHEMA, TABLE),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.django_db(transaction=True)
def test_watch_installs_and_reverses_on_hostile_identifiers(stack: Stack, db_url: str, hostile_table: str) -> None:
    op = Watch(
        table=hostile_table,
        schema=SCHEMA,
        channel="q'uote",
        events=["INSERT", "UPDATE"],
        exclude=["n"],
        update_columns=["Name"],
    )
    state = ProjectState()
    with connection.schema_editor() as editor:
        op.database_forwards("tests", editor, state, state)
    assert len(_triggers(db_url)) == 2  # insert/delete trigger and the update trigger

    async def scenario() -> list[dict]:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            await client.subscribe("q'uote")
            with psycopg.connect(db_url, autocommit=True) as conn:
                target = psycopg.sql.SQL("{}.{}").format(psycopg.sql.Identifier(SCHEMA), psycopg.sql.Identifier(TABLE))
                conn.execute(
                    psycopg.sql.SQL(
                        "INSERT INTO {} (\"Name\", secret_note, api_token, n) VALUES ('x', 's', 't', 1)"
                    ).format(target)
                )
                conn.execute(psycopg.sql.SQL("UPDATE {} SET n = 2").format(target))  # Name unchanged: no event
                conn.execute(psycopg.sql.SQL("UPDATE {} SET \"Name\" = 'y'").format(target))
                conn.execute(psycopg.sql.SQL("DELETE FROM {}").format(target))  # DELETE not watched
                events = await client.events(2)
                conn.execute(psycopg.sql.SQL("INSERT INTO {} (\"Name\", n) VALUES ('fence', 3)").format(target))
                (fence,) = await client.events(1)  # no event for the unchanged UPDATE or the DELETE
                assert fence["op"] == "INSERT" and fence["row"]["Name"] == "fence"
            return events

    inserted, renamed = run(scenario())
    assert inserted["op"] == "INSERT" and inserted["schema"] == SCHEMA and inserted["table"] == TABLE
    assert set(inserted["row"]) == {"id", "Name"}  # n excluded; secret_note and api_token sensitive
    assert renamed["op"] == "UPDATE" and renamed["row"]["Name"] == "y" and renamed["old"]["Name"] == "x"

    with connection.schema_editor() as editor:
        op.database_backwards("tests", editor, state, state)
    assert _triggers(db_url) == []


@pytest.mark.django_db(transaction=True)
def test_watch_include_sends_only_listed_columns_even_sensitive_ones(
    stack: Stack, db_url: str, hostile_table: str
) -> None:
    op = Watch(table=hostile_table, schema=SCHEMA, channel="demo", include=["id", "api_token"])
    state = ProjectState()
    with connection.schema_editor() as editor:
        op.database_forwards("tests", editor, state, state)

    async def scenario() -> dict:
        async with Client.connect(f"{stack.ws}/ws/pgevents/demo/") as client:
            await client.expect("subscribed")
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("INSERT INTO {}.{} (\"Name\", api_token) VALUES ('x', 'tok')").format(
                        psycopg.sql.Identifier(SCHEMA), psycopg.sql.Identifier(TABLE)
                    )
                )
            (event,) = await client.events(1)
            return event

    event = run(scenario())
    assert event["row"] == {"id": event["row"]["id"], "api_token": "tok"}


def test_watch_refuses_a_missing_table_or_column(db_url: str) -> None:
    from pgevents.setup import installation

    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with pytest.raises(installation.WatchError, match="does not exist"):
            installation.build_spec(cur, table="no_such_table", channel="demo")
        with pytest.raises(installation.WatchError, match="no column"):
            installation.build_spec(cur, table="people", channel="demo", exclude=["nope"])
        with pytest.raises(installation.WatchError, match="invalid channel"):
            installation.build_spec(cur, table="people", channel="x" * 64)


def test_watch_deconstructs_for_migration_files() -> None:
    op = Watch(model="people.Person", channel="people", exclude=["ts"])
    name, args, kwargs = op.deconstruct()
    assert name == "pgevents.operations.Watch" and args == []
    assert kwargs == {"channel": "people", "model": "people.Person", "exclude": ["ts"]}
    with pytest.raises(ValueError):
        Watch(channel="x")
