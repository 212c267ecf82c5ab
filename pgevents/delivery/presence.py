"""Each server process reports how many subscriptions it holds per channel.

The hub lives inside every server process, so nothing outside that process can ask it. The
process's runtime runs one ``Reporter``, which writes the hub's counts to
``pgevents_presence`` (``pgevents.store.presence``) when they change (checked once a
second, a dict comparison) and as a heartbeat. It writes on the process's shared connection
(no extra connection per process), runs beside the hub, never on the path of an event, and
failures only cost a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from pgevents.core import identity
from pgevents.store import presence
from pgevents.store.db import SharedConnection

logger = logging.getLogger(__name__)

#: Seconds between looks at the counts (written only when they changed).
CHECK_INTERVAL = 1.0


class Reporter:
    def __init__(self, counts: Callable[[], dict[str, int]], connection: SharedConnection) -> None:
        self.counts = counts
        self.connection = connection
        self.process = f"{identity.process()}:{id(self):x}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last: dict[str, int] | None = None
        written_at = float("-inf")
        failing = False
        while True:
            counts = self.counts()
            if counts != last or loop.time() - written_at >= presence.HEARTBEAT:
                last, written_at = counts, loop.time()
                try:
                    await self.connection.run(presence.write, self.process, counts)
                    failing = False
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    if not failing:
                        logger.warning("could not report subscriptions (%s: %s)", type(exc).__name__, exc)
                    failing = True
            await asyncio.sleep(CHECK_INTERVAL)
