"""The event log's contract, run against PostgreSQL and against ``MemoryLog``.

The fast tests of the delivery core read from ``pgevents.store.memory.MemoryLog``; these
tests hold it to what the real log does (the trigger's insert, ``pgevents_assign``,
``log.prune``, ``log.read_after``, ``log.HEAD``), so both answer every question alike.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pgevents.store import log
from pgevents.store.memory import MemoryLog
from tests.support import run


class Postgres:
    """The same operations on the real log of a database of its own."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def append(self, channel: str, row: dict[str, Any]) -> None:
        await self.conn.execute(
            "INSERT INTO pgevents_event (channel, op, schema_name, table_name, \"row\") VALUES (%s, 'INSERT', 'public', 't', %s)",
            (channel, json.dumps(row)),
        )

    async def assign(self, published: int = 0) -> list[log.LoggedEvent]:
        return await log.assign(self.conn, 500, published)

    async def prune(self, retention: float) -> int:
        return await log.prune(self.conn, retention)

    async def read_after(self, channel: str, after: int, limit: int) -> log.Replay:
        return await log.read_after(self.conn, channel, after, limit)

    async def head(self, channel: str) -> int:
        return await log.head(self.conn, channel)


class Memory:
    def __init__(self) -> None:
        self.log = MemoryLog()

    async def append(self, channel: str, row: dict[str, Any]) -> None:
        self.log.append(channel, row=row, table="t")

    async def assign(self, published: int = 0) -> list[log.LoggedEvent]:
        return self.log.assign(500, published)

    async def prune(self, retention: float) -> int:
        return self.log.prune(retention)

    async def read_after(self, channel: str, after: int, limit: int) -> log.Replay:
        return await self.log.read_after(channel, after, limit)

    async def head(self, channel: str) -> int:
        return await self.log.head(channel)


@pytest.fixture(params=["postgres", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def scenario(kind: str, url: str | None, body: Any) -> None:
    async def go() -> None:
        if kind == "memory":
            await body(Memory())
            return
        assert url is not None
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await body(Postgres(conn))

    run(go())


@pytest.fixture
def url(kind: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("isolated_db")) if kind == "postgres" else None


def test_positions_in_order_with_per_channel_links_and_frames(kind: str, url: str | None) -> None:
    async def body(db: Any) -> None:
        for name in ("a1", "a2"):
            await db.append("a", {"name": name})
        await db.append("b", {"name": "b1"})
        await db.append("a", {"name": "a3"})
        first, second, third, fourth = await db.assign()
        assert [e.id for e in (first, second, third, fourth)] == [1, 2, 3, 4]
        assert [(e.channel, e.prev) for e in (first, second, third, fourth)] == [
            ("a", None),
            ("a", 1),
            ("b", None),
            ("a", 2),
        ]
        frame = json.loads(fourth.frame)
        assert {k: frame[k] for k in ("type", "channel", "id", "op", "table", "row")} == {
            "type": "event",
            "channel": "a",
            "id": 4,
            "op": "INSERT",
            "table": "t",
            "row": {"name": "a3"},
        }
        assert frame["at"].endswith("Z")
        assert await db.assign() == []

    scenario(kind, url, body)


def test_read_after_pages_and_resets_outside_the_log(kind: str, url: str | None) -> None:
    async def body(db: Any) -> None:
        assert await db.head("a") == 0
        assert await db.read_after("a", 0, 10) == log.Replay([])
        for i in range(5):
            await db.append("a" if i != 2 else "b", {"i": i})
        await db.assign()
        page = await db.read_after("a", 1, 2)
        assert [e.id for e in page.events] == [2, 4] and page.more and not page.reset
        page = await db.read_after("a", 4, 2)
        assert [e.id for e in page.events] == [5] and not page.more
        assert (await db.read_after("a", 6, 2)).reset  # a future id: another database's history
        assert await db.head("a") == 5 and await db.head("b") == 3 and await db.head("quiet") == 0

    scenario(kind, url, body)


def test_after_a_prune_the_head_of_a_quiet_channel_resumes_without_reset(kind: str, url: str | None) -> None:
    """The head is where regions and new subscriptions start: it must never point into pruned
    history, or every page of a quiet channel is reset (and reloads) on every view."""

    async def body(db: Any) -> None:
        for name in ("q", "q", "busy"):
            await db.append(name, {})
        await db.assign()
        await db.assign(published=3)  # the listener confirms it sent them
        assert await db.prune(0) == 3
        assert (await db.read_after("q", 0, 10)).reset  # that history is gone
        head = await db.head("q")
        assert head == 3
        assert await db.read_after("q", head, 10) == log.Replay([])
        await db.append("q", {"after": True})
        (event,) = await db.assign()
        assert (event.id, event.prev) == (4, None)
        assert [e.id for e in (await db.read_after("q", head, 10)).events] == [4]

    scenario(kind, url, body)


def test_prune_keeps_what_was_not_confirmed_sent(kind: str, url: str | None) -> None:
    async def body(db: Any) -> None:
        for _ in range(3):
            await db.append("a", {})
        await db.assign(published=0)
        await db.assign(published=1)
        assert await db.prune(0) == 1
        assert [e.id for e in (await db.read_after("a", 1, 10)).events] == [2, 3]
        assert await db.head("a") == 3

    scenario(kind, url, body)
