"""The event log: sequencing (listener), reading after id N (replay), pruning, state.

The writer's trigger appends to the log; everything that reads or trims it lives here, so
the listener's catch-up and the consumers' replay share one definition of "after N". Every
write goes through a function of the log's owner (``pgevents_assign``, ``pgevents_prune``,
``pgevents_take_transient``): the roles that call them need no write right on the tables.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

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


#: The sequencer call: position up to ``batch`` committed events, record ``published``.
ASSIGN = "SELECT * FROM pgevents_assign(%s, %s)"


async def assign(conn: psycopg.AsyncConnection[Any], batch: int, published: int) -> list[LoggedEvent]:
    """Position the next committed events in commit order and return them, oldest first."""
    cur = await conn.execute(ASSIGN, (batch, published))
    return [LoggedEvent(*row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class Look:
    """What one look found: positioned events (oldest first), and non-durable events as
    ``(channel, frame)``, taken out of the transient table as they were read (each is handed
    out once: a listener that dies before forwarding them loses them)."""

    events: list[LoggedEvent]
    transient: list[tuple[str, str]]


#: A look that takes the transient table too: the sequencer and the take in one statement,
#: so one round trip and one transaction. (Since migration 0010 the take's plan is made once
#: per session; before, on every call.)
LOOK = (
    "SELECT event_id, prev_event_id, event_channel, event_frame FROM pgevents_assign(%s, %s)"
    " UNION ALL SELECT NULL, NULL, event_channel, event_frame FROM pgevents_take_transient(%s)"
)


async def look(conn: psycopg.AsyncConnection[Any], batch: int, published: int, transient: bool) -> Look:
    """Position up to ``batch`` committed events, and with ``transient`` take up to ``batch``
    non-durable ones."""
    if not transient:
        return Look(await assign(conn, batch, published), [])
    cur = await conn.execute(LOOK, (batch, published, batch))
    found = Look([], [])
    for event_id, prev, channel, frame in await cur.fetchall():
        if event_id is None:
            found.transient.append((channel, frame))
        else:
            found.events.append(LoggedEvent(event_id, prev, channel, frame))
    return found


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


#: Where a new subscription to a channel starts: its newest positioned event, or the point
#: the log was pruned to when that is later (a quiet channel whose events were all pruned, or
#: an event positioned before a later-pruned one). Every event committed before this read has
#: an id at most this one, and a resume from it is never answered with ``reset``.
HEAD = (
    "SELECT greatest(coalesce(max(id), 0), (SELECT value FROM pgevents_cursor WHERE name = 'pruned'))"
    " FROM pgevents_event WHERE channel = %s AND id IS NOT NULL"
)


async def head(conn: psycopg.AsyncConnection[Any], channel: str) -> int:
    """The starting point of a new subscription to ``channel`` (see ``HEAD``)."""
    cur = await conn.execute(HEAD, (channel,))
    return _first_int(await cur.fetchone())


def head_sync(cursor: Any, channel: str) -> int:
    """``head`` on a Django cursor, for pages that render at the head (live regions)."""
    cursor.execute(HEAD, [channel])
    return _first_int(cursor.fetchone())


def _first_int(row: Any) -> int:
    return int(row[0]) if row and row[0] is not None else 0


async def positioned_after(conn: psycopg.AsyncConnection[Any], after: int, limit: int) -> list[LoggedEvent]:
    """Positioned events of every channel after ``after``: what a previous listener may not
    have forwarded before it stopped (it records how far it got only on its next round trip)."""
    cur = await conn.execute(
        "SELECT id, prev_id, channel, pgevents_frame(e) FROM pgevents_event e WHERE id > %s ORDER BY id LIMIT %s",
        (after, limit),
    )
    return [LoggedEvent(*row) for row in await cur.fetchall()]


async def prune(
    conn: psycopg.AsyncConnection[Any], retention: float, chunk: int = 5000, timeout: float | None = None
) -> int:
    """Delete forwarded events older than ``retention`` seconds, in short transactions.

    Only events already positioned *and* published are removed; each chunk is its own
    statement (``pgevents_prune()``, which runs with the owner's rights: the listener's role
    cannot write the log; bounded by ``timeout`` seconds, if given) so writers never wait on a
    long delete.
    """
    removed = 0
    while True:
        async with asyncio.timeout(timeout):  # a scope, not wait_for, which can swallow a cancellation
            cur = await conn.execute("SELECT pgevents_prune(%s, %s)", (retention, chunk))
        row = await cur.fetchone()
        count = int(row[0]) if row else 0
        removed += count
        if count < chunk:
            return removed


#: The log's tables that autovacuum does not look after, and why: ``server`` (``autovacuum`` or
#: ``track_counts`` is off) or ``table`` (the table's ``autovacuum_enabled`` is off). Every
#: positioned event leaves a dead row version (the sequencer sets its id), every pruned one a
#: dead row, and the transient table is emptied as it is read: without vacuum the tables and
#: their indexes only grow, and the sequencer's reads of the pending index with them.
NOT_VACUUMED = (
    "SELECT c.relname, CASE WHEN current_setting('autovacuum') = 'off' OR current_setting('track_counts') = 'off'"
    " THEN 'server' ELSE 'table' END"
    " FROM pg_class c WHERE c.oid IN ('pgevents_event'::regclass, 'pgevents_transient'::regclass)"
    " AND (current_setting('autovacuum') = 'off' OR current_setting('track_counts') = 'off'"
    " OR EXISTS (SELECT FROM unnest(c.reloptions) o WHERE o ~* '^autovacuum_enabled=(f|of|n|0)'))"
    " ORDER BY c.relname"
)


#: What waits for the listener: events committed but not yet positioned, the oldest one's
#: age, and PostgreSQL's NOTIFY queue. Reads only the pending events (a partial index), so
#: it is cheap enough for every metrics scrape.
LAG = (
    "SELECT count(*), extract(epoch FROM clock_timestamp() - min(at)), pg_notification_queue_usage()"
    " FROM pgevents_event WHERE id IS NULL"
)
#: ``LAG``, the size and age of the whole log, and the sequencer's cursors, in one row.
STATS = f"""
SELECT lag.*, size.*, (SELECT json_object_agg(name, value)::text FROM pgevents_cursor)
FROM ({LAG}) lag,
     (SELECT count(*), min(at), max(at), pg_total_relation_size('pgevents_event') FROM pgevents_event) size
"""


@dataclass(frozen=True)
class Lag:
    pending: int
    #: Age of the oldest pending event in seconds (None: nothing pending).
    oldest_pending_seconds: float | None
    notify_queue_usage: float


def _lag(row: Any) -> Lag:
    pending, age, queue = row[:3]
    return Lag(int(pending), None if age is None else float(age), float(queue))


def _stats(row: Any) -> dict[str, Any]:
    lag = _lag(row)
    events, oldest, newest, size, cursors_json = row[3:]
    state: dict[str, int] = json.loads(cursors_json or "{}")
    return {
        "events": events,
        "bytes": size,
        "oldest": oldest,
        "newest": newest,
        "pending": lag.pending,
        "oldest_pending_seconds": lag.oldest_pending_seconds,
        "unpublished": max(state.get("assigned", 0) - state.get("published", 0), 0),
        "cursors": state,
        "notify_queue_usage": lag.notify_queue_usage,
    }


async def lag(conn: psycopg.AsyncConnection[Any]) -> Lag:
    cur = await conn.execute(LAG)
    return _lag(await cur.fetchone())


async def stats(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """The log's size, age, lag and cursors, for ``pgevents_log status``."""
    cur = await conn.execute(STATS)
    return _stats(await cur.fetchone())


def stats_sync(cursor: Any) -> dict[str, Any]:
    """``stats`` on a Django cursor, for ``pgevents_status`` and the admin's status page."""
    cursor.execute(STATS)
    return _stats(cursor.fetchone())


class LogReader(Protocol):
    """What a server process reads from the log: the event log in PostgreSQL (``Reader``),
    or ``pgevents.store.memory.MemoryLog`` in tests."""

    async def read_after(self, channel: str, after: int, limit: int) -> Replay: ...

    async def head(self, channel: str) -> int: ...

    async def run(self, fn: db.Query, *args: Any) -> Any:
        """Another short read on the same connection (the columns a channel carries)."""


class Reader:
    """The log as a server process reads it, on the process's shared connection."""

    def __init__(self, connection: db.SharedConnection) -> None:
        self.connection = connection

    async def run(self, fn: db.Query, *args: Any) -> Any:
        """Any other short read on the same connection (e.g. the columns a channel carries)."""
        return await self.connection.run(fn, *args)

    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        result: Replay = await self.connection.run(read_after, channel, after, limit)
        return result

    async def head(self, channel: str) -> int:
        result: int = await self.connection.run(head, channel)
        return result


# -- from Django's own connection (sync), for pgevents.testing ------------------------------
def sequence_position(cursor: Any) -> int:
    """The log's insertion sequence as it stands, counting rows of transactions not yet
    committed: everything logged after this call has a larger ``seq``."""
    cursor.execute("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('pgevents_event', 'seq')), 0)")
    return int(cursor.fetchone()[0])


def logged_since(cursor: Any, seq: int, channels: list[str] | None) -> list[str]:
    """Frames of the events logged after ``seq`` that this cursor's transaction can see
    (its own, uncommitted ones included), oldest first; ``channels`` None: every channel."""
    cursor.execute(
        "SELECT pgevents_frame(e) FROM pgevents_event e WHERE seq > %s"
        " AND (%s::text[] IS NULL OR channel = ANY(%s::text[])) ORDER BY seq",
        [seq, channels, channels],
    )
    return [row[0] for row in cursor.fetchall()]
