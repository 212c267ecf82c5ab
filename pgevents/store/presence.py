"""``pgevents_presence``: how many subscriptions each server process holds, per channel.

Written by each server process (``pgevents.delivery.presence``), read by ``pgevents_status``
and the admin's status page from any host. Rows of processes not heard of for
``STALE_AFTER`` seconds are left out of the report; much older ones are deleted by the
writers themselves.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

#: Seconds between writes when nothing changed, so a live process stays visible.
HEARTBEAT = 15.0
#: A process not heard of for this long is gone (crashed or stopped).
STALE_AFTER = 3 * HEARTBEAT
#: Rows this old are deleted.
FORGET_AFTER = 20 * STALE_AFTER


async def write(conn: psycopg.AsyncConnection[Any], process: str, counts: dict[str, int]) -> None:
    await conn.execute(
        "INSERT INTO pgevents_presence (process, counts, seen) VALUES (%s, %s::jsonb, now())"
        " ON CONFLICT (process) DO UPDATE SET counts = excluded.counts, seen = excluded.seen",
        (process, json.dumps(counts)),
    )
    await conn.execute("DELETE FROM pgevents_presence WHERE seen < now() - make_interval(secs => %s)", (FORGET_AFTER,))


def recent(cursor: Any) -> list[dict[str, Any]]:
    """The processes heard of within ``STALE_AFTER``: ``{"process", "channels", "seen"}`` each."""
    cursor.execute(
        "SELECT process, counts, seen FROM pgevents_presence"
        " WHERE seen > now() - make_interval(secs => %s) ORDER BY process",
        [STALE_AFTER],
    )
    return [
        # Django's cursors hand jsonb over as text (its JSONField decodes it), psycopg's as objects.
        {"process": p, "channels": json.loads(counts) if isinstance(counts, str) else counts, "seen": seen}
        for p, counts, seen in cursor.fetchall()
    ]
