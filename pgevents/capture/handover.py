"""When the listener polls the log and when it sleeps on LISTEN (docs/delivery.md, "Wake-ups").

A wake-up ``NOTIFY`` costs every writer a cluster-wide lock at commit. So while commits come
as a stream (a look found events, durable or not, at least one per ``stream`` seconds since
the previous look that found any), the listener polls and says so (``pgevents_wake``):
writers skip the wake-up. Once a look while polling (or the one that started it) found
non-durable events, every look takes the transient table too, in the same statement as the
log (``pgevents.store.log.look``), and it says so as well (``pgevents_wake(true, true)``,
migration 0010): writers of non-durable rows skip theirs too. A stream of durable events
alone never touches the transient table. It looks again at once
after a look that found events, and ``tick`` after one that found none. After ``linger``
without a new event it stops polling, in this order:

1. the flag says "wake me" (from now on every writer sends the wake-up);
2. it takes the hand-over key exclusively, which waits for every writer that may have
   skipped its wake-up (each holds the key, shared, until its transaction ends);
3. it looks once more (the transient table too if it took it while polling), and then
   sleeps on LISTEN.

Step 2 must not hold up the loop (a writer's transaction can be long): the key is tried at
once on the listener's connection, and when a writer still holds it, a second connection
waits for it and then sends a transient wake-up itself (a look at both tables), so step 3
follows as soon as the last such writer ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from pgevents.core.envelope import INTERNAL_CHANNEL, WAKE_TRANSIENT
from pgevents.store import db, wake

logger = logging.getLogger(__name__)

#: Seconds between two looks at the log while polling when the last one found nothing, and
#: without a new event before the listener stops polling. Every look at an empty log is one
#: read on the pending index.
TICK, LINGER = 0.0005, 0.02
#: Events found at least one per this many seconds (since the previous look that found any)
#: start the polling: a thousand a second or more. Slower, a wake-up costs the writers little
#: (their commits rarely overlap), and the listener sleeps on LISTEN between commits instead
#: of looking at the log every tick.
STREAM = 0.001


class Handover:
    """The listener's polling state for one session of its connection."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        *,
        enabled: bool = True,
        tick: float = TICK,
        linger: float = LINGER,
        stream: float = STREAM,
        counts: dict[str, int] | None = None,
    ) -> None:
        self.connect = connect
        self.enabled = enabled
        self.tick = tick
        self.linger = linger
        self.stream = stream
        #: The flag says this listener is polling: writers skip their wake-ups.
        self.polling = False
        #: The database has the hand-over for non-durable rows (migration 0010).
        self.transient = False
        #: Every look takes the transient table: set (with the transient flag) when a look
        #: while polling found non-durable events, cleared when polling starts again without
        #: them; still set for the last look after a stop when that look follows at once (a
        #: look after a wait is caused by the waiting connection's ``'t'``).
        self.takes_transient = False
        self._last_event = float("-inf")
        #: Hand-overs asked for (one per stop) and the last one a wait completed.
        self._asked = self._done = 0
        self._waiter: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        #: How often it started polling, stopped, and had to wait for a writer to end.
        self.counts = counts if counts is not None else {}
        for key in ("started", "stopped", "waited"):
            self.counts.setdefault(key, 0)

    async def start(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """At the start of a session: writers wake us, including any that saw a flag left by a
        previous listener (it stopped without the hand-over). The caller then drains the log."""
        self.polling = False
        covers = await wake.support(conn) if self.enabled else wake.NONE
        if self.enabled and covers == wake.NONE:
            logger.info("the database has no wake-up hand-over (run migrate): every watched commit wakes the listener")
            self.enabled = False
        elif covers == wake.LOG:
            logger.info(
                "the database has no wake-up hand-over for non-durable watches (run migrate):"
                " each of their commits wakes the listener"
            )
        self.transient = covers == wake.LOG_AND_TRANSIENT
        if self.enabled:
            await self._stop(conn)

    async def moved(self, conn: psycopg.AsyncConnection[Any], events: int, transient: int = 0) -> bool:
        """After a look that found ``events`` new events, ``transient`` of them non-durable:
        start polling (commits are coming close together), take the transient table in every
        look from now on (non-durable ones are among them), or stop after ``linger`` without
        any. True when the caller must look once more now (step 3: the hand-over completed
        at once)."""
        now = time.monotonic()
        if events:
            previous, self._last_event = self._last_event, now
            wanted = self.transient and transient > 0
            if self.enabled and not self.polling and now - previous <= events * self.stream:
                self.polling = await wake.set_polling(conn, True, transient=wanted)
                self.takes_transient = self.polling and wanted
                self.counts["started"] += self.polling
            elif self.polling and wanted and not self.takes_transient:
                self.takes_transient = await wake.set_polling(conn, True, transient=True)
            return False
        if self.polling and now - self._last_event >= self.linger:
            return await self._stop(conn)
        return False

    async def _stop(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Steps 1 and 2. True when the key was free at once; otherwise a second connection
        waits for it and then wakes the loop like a writer would."""
        await wake.set_polling(conn, False, transient=self.transient)  # clears both flags
        self.polling = False
        self.counts["stopped"] += 1
        if await wake.try_handover(conn):
            return True
        self.counts["waited"] += 1
        self._asked += 1
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.ensure_future(self._wait())
        return False

    async def _wait(self) -> None:
        while self._done < self._asked:
            asked = self._asked  # a stop after this point needs a wait that starts after it
            if self._conn is None or self._conn.closed:
                self._conn = await self.connect()
            await wake.wait_handover(self._conn)
            self._done = asked
            # 't': the look it causes takes the transient table as well as the log, whatever
            # the listener does by then (it may be polling again, without taking the table).
            await self._conn.execute("SELECT pg_notify(%s, %s)", (INTERNAL_CHANNEL, WAKE_TRANSIENT))

    def check(self) -> None:
        """Raise what ended the waiting connection (the session then reconnects)."""
        if self._waiter is not None and self._waiter.done() and not self._waiter.cancelled():
            exc = self._waiter.exception()
            if exc is not None:
                raise exc

    def abandon(self) -> None:
        """Close the waiting connection once the loop is closed (see ``db.finish``)."""
        conn, self._conn = self._conn, None
        db.finish(conn)

    async def close(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # ends with the session either way
                await self._waiter
            self._waiter = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self.polling = False
