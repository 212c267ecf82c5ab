"""Where new subscriptions start: one log query for all that ask at once.

A subscription without ``last_event_id`` starts at the channel's head, read after it joined
the hub (so that no event falls between the two). When a thousand clients connect within a
second, a thousand identical head queries would queue on the process's one shared
connection, each a round trip. ``SharedHeads`` lets them share: per channel one query at a
time, and everyone who asks while it runs gets the next one. A caller never gets an answer
from a query that started before it asked, which is the only thing the head's correctness
depends on (an event committed before the query started has an id at most the head; one
committed after it reaches the already joined subscription).

It wraps the process's log reader and passes everything else through unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pgevents.store import db
from pgevents.store.log import LogReader, Replay


class SharedHeads:
    """A ``LogReader`` whose ``head`` look-ups for one channel share queries (see module)."""

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        #: Per channel, the answer the next query will give (asked for, not yet started).
        self._next: dict[str, asyncio.Future[int]] = {}
        #: Channels with a query running.
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Head queries sent, for tests and diagnostics.
        self.queries = 0

    async def head(self, channel: str) -> int:
        answer = self._next.get(channel)
        if answer is None:
            answer = self._next[channel] = asyncio.get_running_loop().create_future()
            answer.add_done_callback(_retrieve)
            if channel not in self._running:
                self._running.add(channel)
                task = asyncio.ensure_future(self._drain(channel))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        # shielded: one caller giving up (its connection closed) cancels nobody else's answer
        return await asyncio.shield(answer)

    async def _drain(self, channel: str) -> None:
        try:
            while (answer := self._next.pop(channel, None)) is not None:
                # Taken off ``_next`` before the query is sent: whoever asks from now on waits
                # for a query of its own.
                self.queries += 1
                try:
                    answer.set_result(await self.reader.head(channel))
                except asyncio.CancelledError:
                    answer.cancel()
                    raise
                except Exception as exc:  # every waiter gets the failure (and retries on its own)
                    answer.set_exception(exc)
        finally:
            self._running.discard(channel)
            waiting = self._next.pop(channel, None)
            if waiting is not None:  # cancelled while others waited: they must not wait forever
                waiting.cancel()

    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        return await self.reader.read_after(channel, after, limit)

    async def run(self, fn: db.Query, *args: Any) -> Any:
        return await self.reader.run(fn, *args)


def _retrieve(answer: asyncio.Future[int]) -> None:
    """Mark a failure as seen: a waiter that gave up must not leave it unretrieved."""
    if not answer.cancelled():
        answer.exception()
