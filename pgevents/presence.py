"""Each server process reports how many subscriptions it holds per channel.

The hub lives inside every daphne process, so nothing outside that process can ask it.
A small task per hub writes its counts to ``pgevents_presence`` when they change (checked
once a second, a dict comparison) and as a heartbeat; ``pgevents_status`` sums the rows
seen recently. A table rather than Redis: it works with every channel layer (also the
in-memory one) and the status tools already read this database. It runs beside the hub,
never on the path of an event, and failures only cost a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import psycopg

from . import conf, db

logger = logging.getLogger("pgevents.presence")

#: Seconds between looks at the hub's counts (written only when they changed).
CHECK_INTERVAL = 1.0
#: Seconds between writes when nothing changed, so a live process stays visible.
HEARTBEAT = 15.0
#: A process not heard of for this long is gone (crashed or stopped).
STALE_AFTER = 3 * HEARTBEAT

_reporters: dict[int, asyncio.Task[None]] = {}


def ensure_reporter(hub: Any) -> None:
    """Start the reporting task of ``hub`` on the running loop, once."""
    task = _reporters.get(id(hub))
    if task is None or task.done():
        _reporters[id(hub)] = asyncio.ensure_future(Reporter(hub).run())


class Reporter:
    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.process = f"{socket.gethostname()}:{os.getpid()}:{id(hub):x}"
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._loop(loop)
        finally:
            await self._close()

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        last: dict[str, int] | None = None
        written_at = float("-inf")
        failing = False
        while True:
            counts = self.hub.count()
            if counts != last or loop.time() - written_at >= HEARTBEAT:
                last, written_at = counts, loop.time()
                try:
                    await asyncio.wait_for(self._write(counts), conf.get().query_timeout)
                    failing = False
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    if not failing:
                        logger.warning("could not report subscriptions (%s: %s)", type(exc).__name__, exc)
                    failing = True
                    await self._close()
            await asyncio.sleep(CHECK_INTERVAL)

    async def _write(self, counts: dict[str, int]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await db.connect(application_name="pgevents-presence")
        await self._conn.execute(
            "INSERT INTO pgevents_presence (process, counts, seen) VALUES (%s, %s::jsonb, now())"
            " ON CONFLICT (process) DO UPDATE SET counts = excluded.counts, seen = excluded.seen",
            (self.process, json.dumps(counts)),
        )
        await self._conn.execute(
            "DELETE FROM pgevents_presence WHERE seen < now() - make_interval(secs => %s)", (STALE_AFTER * 20,)
        )

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
