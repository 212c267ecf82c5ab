"""The listener in this process, on a database of its own and channels' in-memory layer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from channels.layers import InMemoryChannelLayer
from django.conf import settings
from django.test import override_settings

from pgevents.capture.listener import Listener
from pgevents.core.batch import unpack
from pgevents.core.names import group_name
from pgevents.store import db


def test_catches_up_forwards_row_changes_and_plain_notifies_then_stops(isolated_db: str) -> None:
    async def body() -> None:
        with psycopg.connect(isolated_db, autocommit=True) as writer:
            writer.execute("INSERT INTO people (name) VALUES ('before')")  # committed while no listener runs
        layer = InMemoryChannelLayer()
        inbox = await layer.new_channel("test.")
        for channel in ("people", "demo"):
            await layer.group_add(group_name(channel), inbox)

        async def connect() -> psycopg.AsyncConnection[Any]:
            conn = await psycopg.AsyncConnection.connect(isolated_db, autocommit=True, application_name="t")
            await conn.execute("SET TIME ZONE 'UTC'")
            return conn

        # Prune on every round (retention 0: whatever was sent), and space sequencer runs.
        with override_settings(PGEVENTS={**settings.PGEVENTS, "RETENTION": 0}):
            listener = Listener(layer=layer, connect=connect, channels=["demo"], prune_interval=0, coalesce=0.01)
        task = asyncio.ensure_future(listener.run())

        async def next_event() -> dict[str, Any]:
            (event,) = unpack(await asyncio.wait_for(layer.receive(inbox), 10))
            return {**json.loads(event["frame"]), "prev": event["prev"]}

        first = await next_event()
        assert first["row"]["name"] == "before" and first["prev"] is None
        async with await psycopg.AsyncConnection.connect(isolated_db, autocommit=True) as writer:
            await writer.execute("INSERT INTO people (name) VALUES ('after')")
            second = await next_event()
            assert second["row"]["name"] == "after" and second["prev"] == first["id"]
            await writer.execute("NOTIFY demo, 'hi'")
            plain = await next_event()
            assert plain["payload"] == "hi" and plain["id"] is None
        assert listener.active
        listener.stop()
        await asyncio.wait_for(task, 10)
        assert not listener.active and listener.forwarded == 3
        with psycopg.connect(isolated_db) as check:  # pruned once confirmed sent (at the next round trip)
            assert check.execute("SELECT count(*) FROM pgevents_event WHERE id = %s", (first["id"],)).fetchone() == (0,)

    asyncio.run(body())


def test_the_listener_reads_its_database_from_django_settings(db_url: str) -> None:
    params = db.connection_params()
    assert params["application_name"] == "pgevents" and params["dbname"] == db_url.rsplit("/", 1)[1]


def test_non_durable_events_are_taken_from_the_transient_table_in_batches_once(isolated_db: str) -> None:
    from pgevents.setup import installation

    with psycopg.connect(isolated_db, autocommit=True) as owner:
        owner.execute("CREATE TABLE fleeting (id serial PRIMARY KEY, name text)")
        with owner.cursor() as cur:
            spec = installation.build_spec(cur, table="fleeting", channel="t.fleeting", durable=False)
            installation.install(cur, spec)
        with owner.transaction():  # committed while no listener runs: taken at catch-up
            for n in range(5):
                owner.execute("INSERT INTO fleeting (name) VALUES (%s)", (f"early {n}",))

    async def body() -> None:
        layer = InMemoryChannelLayer()
        inbox = await layer.new_channel("test.")
        await layer.group_add(group_name("t.fleeting"), inbox)
        listener = Listener(
            layer=layer,
            connect=lambda: psycopg.AsyncConnection.connect(isolated_db, autocommit=True),
            channels=[],
            batch_size=2,
        )
        task = asyncio.ensure_future(listener.run())
        names: list[str] = []

        async def receive(count: int) -> None:
            while len(names) < count:
                for event in unpack(await asyncio.wait_for(layer.receive(inbox), 10)):
                    frame = json.loads(event["frame"])
                    assert frame["id"] is None and event["id"] is None
                    names.append(frame["row"]["name"])

        await receive(5)
        async with await psycopg.AsyncConnection.connect(isolated_db, autocommit=True) as writer:
            async with writer.transaction():  # one wake-up, three events: two batches
                for n in range(3):
                    await writer.execute("INSERT INTO fleeting (name) VALUES (%s)", (f"late {n}",))
            await receive(8)
        listener.stop()
        await asyncio.wait_for(task, 10)
        assert names == [f"early {n}" for n in range(5)] + [f"late {n}" for n in range(3)]

    asyncio.run(body())
    with psycopg.connect(isolated_db) as check:  # each was handed out once, and is gone
        assert check.execute("SELECT count(*) FROM pgevents_transient").fetchone() == (0,)


def test_a_wake_up_is_kept_when_an_ignored_notification_arrives_with_it(isolated_db: str) -> None:
    """Notifications that arrive together (one commit, or while the listener ran other
    queries) are read in one batch; an ignored one after a wake-up used to cancel it, and a
    non-durable event then waited for the next wake-up of its kind."""
    from pgevents.capture.listener import WAKE_LOG, WAKE_TRANSIENT

    async def body() -> None:
        listener = Listener(layer=InMemoryChannelLayer(), channels=[], poll_interval=60.0)
        async with await psycopg.AsyncConnection.connect(isolated_db, autocommit=True) as conn:
            await conn.execute("LISTEN pgevents")
            with psycopg.connect(isolated_db) as other:  # one transaction: one packet at commit
                other.execute("NOTIFY pgevents, 't'")
                other.execute("NOTIFY pgevents, ''")
                other.execute("NOTIFY pgevents, 'forged'")
            await conn.execute("SELECT 1")  # they arrive while another query runs
            assert await listener._wait(conn) == WAKE_LOG | WAKE_TRANSIENT

    asyncio.run(body())
