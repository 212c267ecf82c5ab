"""Each server process reports how many subscriptions it holds per channel.

The hub lives inside every daphne process, so nothing outside that process can ask it.
A small task per hub writes its counts to ``pgevents_presence`` when they change (checked
once a second, a dict comparison) and as a heartbeat; ``pgevents_status`` sums the rows
seen recently. A table rather than Redis: it works with every channel layer (also the
in-memory one) and the status tools already read this database. It writes on the hub's
shared replay connection (no extra connection per process), runs beside the hub, never on
the path of an event, and failures only cost a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

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

    async def run(self) -> None:
        await self._loop(asyncio.get_running_loop())

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        last: dict[str, int] | None = None
        written_at = float("-inf")
        failing = False
        while True:
            counts = self.hub.count()
            if counts != last or loop.time() - written_at >= HEARTBEAT:
                last, written_at = counts, loop.time()
                try:
                    await self.hub.reader.run(_write, self.process, counts)
                    failing = False
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    if not failing:
                        logger.warning("could not report subscriptions (%s: %s)", type(exc).__name__, exc)
                    failing = True
            await asyncio.sleep(CHECK_INTERVAL)


async def _write(conn: psycopg.AsyncConnection[Any], process: str, counts: dict[str, int]) -> None:
    await conn.execute(
        "INSERT INTO pgevents_presence (process, counts, seen) VALUES (%s, %s::jsonb, now())"
        " ON CONFLICT (process) DO UPDATE SET counts = excluded.counts, seen = excluded.seen",
        (process, json.dumps(counts)),
    )
    await conn.execute(
        "DELETE FROM pgevents_presence WHERE seen < now() - make_interval(secs => %s)", (STALE_AFTER * 20,)
    )
