"""The event log: sequencing (listener), reading after id N (replay), pruning, state.

The writer's trigger appends to the log; everything that reads or trims it lives here, so
the listener's catch-up and the consumers' replay share one definition of "after N".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from pgevents import conf
from pgevents.store import db

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedEvent:
    id: int
    prev: int | None
    channel: str
    frame: str


@dataclass(frozen=True)
class Replay:
    """Result of reading a channel after an id."""

    events: list[LoggedEvent]
    #: The requested id is outside the log (pruned, or from another database): reload state.
    reset: bool = False
    #: More events remain after these (the caller reads again from the last id).
    more: bool = False


async def assign(conn: psycopg.AsyncConnection[Any], batch: int, published: int) -> list[LoggedEvent]:
    """Position the next committed events in commit order and return them, oldest first."""
    cur = await conn.execute("SELECT * FROM pgevents_assign(%s, %s)", (batch, published))
    return [LoggedEvent(*row) for row in await cur.fetchall()]


async def cursors(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute("SELECT name, value FROM pgevents_cursor")
    return {name: value for name, value in await cur.fetchall()}


async def read_after(conn: psycopg.AsyncConnection[Any], channel: str, after: int, limit: int) -> Replay:
    """Events of ``channel`` with id > ``after``, or ``reset`` when that history is gone."""
    state = await cursors(conn)
    if after < state.get("pruned", 0) or after > state.get("assigned", 0):
        return Replay([], reset=True)
    cur = await conn.execute(
        "SELECT id, prev_id, channel, pgevents_frame(e) FROM pgevents_event e"
        " WHERE channel = %s AND id > %s ORDER BY id LIMIT %s",
        (channel, after, limit + 1),
    )
    rows = [LoggedEvent(*row) for row in await cur.fetchall()]
    return Replay(rows[:limit], more=len(rows) > limit)


async def last_id(conn: psycopg.AsyncConnection[Any], channel: str) -> int:
    """The newest positioned id on ``channel`` (0 when none): a subscription's starting point."""
    cur = await conn.execute(
        "SELECT coalesce(max(id), (SELECT value FROM pgevents_cursor WHERE name = 'pruned'))"
        " FROM pgevents_event WHERE channel = %s AND id IS NOT NULL",
        (channel,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def positioned_after(conn: psycopg.AsyncConnection[Any], after: int, limit: int) -> list[LoggedEvent]:
    """Positioned events of every channel after ``after``: what a previous listener may not
    have forwarded before it stopped (it records how far it got only on its next round trip)."""
    cur = await conn.execute(
        "SELECT id, prev_id, channel, pgevents_frame(e) FROM pgevents_event e WHERE id > %s ORDER BY id LIMIT %s",
        (after, limit),
    )
    return [LoggedEvent(*row) for row in await cur.fetchall()]


async def prune(conn: psycopg.AsyncConnection[Any], retention: float, chunk: int = 5000) -> int:
    """Delete forwarded events older than ``retention`` seconds, in short transactions.

    Only events already positioned *and* published are removed; each chunk is its own
    statement so writers never wait on a long delete.
    """
    removed = 0
    while True:
        cur = await conn.execute(
            """
            WITH head AS (
                -- the oldest positioned, published events: the scan never goes past CHUNK rows,
                -- so a log with nothing old enough costs one short index read, not a full scan
                SELECT seq, id, at FROM pgevents_event
                WHERE id IS NOT NULL
                  AND id <= (SELECT value FROM pgevents_cursor WHERE name = 'published')
                ORDER BY id LIMIT %s
            ), old AS (
                SELECT seq, id FROM head WHERE at < now() - make_interval(secs => %s)
            ), gone AS (
                DELETE FROM pgevents_event e USING old WHERE e.seq = old.seq RETURNING e.id
            )
            UPDATE pgevents_cursor SET value = greatest(value, (SELECT max(id) FROM gone))
            WHERE name = 'pruned' AND EXISTS (SELECT 1 FROM gone)
            RETURNING (SELECT count(*) FROM gone)
            """,
            (chunk, retention),
        )
        row = await cur.fetchone()
        count = int(row[0]) if row else 0
        removed += count
        if count < chunk:
            return removed


async def stats(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """Size and age of the log and the sequencer cursors, for status output."""
    cur = await conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE id IS NULL), min(at), max(at),"
        " pg_total_relation_size('pgevents_event'), pg_notification_queue_usage() FROM pgevents_event"
    )
    row = await cur.fetchone()
    assert row is not None
    return {
        "events": row[0],
        "pending": row[1],
        "oldest": row[2],
        "newest": row[3],
        "bytes": row[4],
        "notify_queue_usage": row[5],
        "cursors": await cursors(conn),
    }


class Reader:
    """One shared connection per process for replays, reconnected when it fails.

    Replays are short indexed reads; serialising them on one connection keeps the database's
    connection count independent of the number of browsers.
    """

    def __init__(self) -> None:
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def run(self, fn: Any, *args: Any) -> Any:
        """``await fn(conn, *args)`` on the shared connection, reconnecting once if it broke."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = await db.connect(application_name="pgevents-replay")
                    return await asyncio.wait_for(fn(self._conn, *args), conf.get().query_timeout)
                except (TimeoutError, psycopg.OperationalError):
                    await self.close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        result: Replay = await self.run(read_after, channel, after, limit)
        return result

    async def last_id(self, channel: str) -> int:
        result: int = await self.run(last_id, channel)
        return result

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
