"""The listener's side of the wake-up hand-over, in SQL (docs/delivery.md, "Wake-ups").

While the listener polls the log, writers skip the wake-up ``NOTIFY`` that serialises their
commits. The flag they read (``pgevents_wake``) is set only through ``pgevents_wake()``, a
function of the log's owner that only the listener role may run. The hand-over key is an
advisory lock every writer that skipped its wake-up holds (shared) until it ends: the
listener takes it exclusively after it stops polling, and then looks at the log once more.
Writers of non-durable rows read a flag of their own (``pgevents_wake_transient``, migration
0010), set only by a listener whose every look takes the transient table too.
"""

from __future__ import annotations

from typing import Any

import psycopg

#: The hand-over key (``pg_advisory_lock(int, int)`` form, as in the trigger function).
#: A polling listener also holds ``(KEY_SPACE, its backend pid)`` for its session.
KEY_SPACE, HANDOVER = 1885824374, 0


#: What the database's hand-over covers (``support``): nothing (before migration 0007: every
#: commit wakes the listener), durable rows only (before 0010), or non-durable rows as well.
NONE, LOG, LOG_AND_TRANSIENT = 0, 1, 2


async def support(conn: psycopg.AsyncConnection[Any]) -> int:
    """What the database's hand-over covers (``NONE``, ``LOG`` or ``LOG_AND_TRANSIENT``).
    Writers of what it does not cover always wake the listener."""
    cur = await conn.execute(
        "SELECT to_regprocedure('pgevents_wake(boolean)') IS NOT NULL,"
        " to_regprocedure('pgevents_wake(boolean, boolean)') IS NOT NULL"
    )
    row = await cur.fetchone()
    if not (row and row[0]):
        return NONE
    return LOG_AND_TRANSIENT if row[1] else LOG


async def set_polling(conn: psycopg.AsyncConnection[Any], polling: bool, *, transient: bool) -> bool:
    """Tell writers the listener is polling (they may skip the wake-up) or not (they must
    wake it); with ``transient``, writers of non-durable rows too (the listener's every look
    takes the transient table). Returns whether the flag now says polling: it may refuse
    when another session holds the key a polling listener takes."""
    if transient:
        cur = await conn.execute("SELECT pgevents_wake(%s, true)", (polling,))
    else:
        cur = await conn.execute("SELECT pgevents_wake(%s)", (polling,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def try_handover(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Take and release the hand-over key if no writer holds it now: every writer that may
    have skipped its wake-up has then ended (its rows, if committed, are visible)."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (KEY_SPACE, HANDOVER))
    row = await cur.fetchone()
    if not (row and row[0]):
        return False
    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (KEY_SPACE, HANDOVER))
    return True


async def wait_handover(conn: psycopg.AsyncConnection[Any]) -> None:
    """Wait for the hand-over key (for the writers that hold it to end), then release it.
    While this waits, writers that try the key fail and send their wake-up."""
    await conn.execute("SELECT pg_advisory_lock(%s, %s)", (KEY_SPACE, HANDOVER))
    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (KEY_SPACE, HANDOVER))
