"""The watched tables of a chaos run, and the truth read back from them.

Each table (``chaos_a``, ``chaos_b``) is watched on the channel of the same name. A row is
``(k, rev, size, payload)``: ``k`` is unique for the run, every UPDATE adds one to ``rev``,
and ``payload`` is a pure function of ``(k, rev, size)`` (``payload()`` below, and the same
function in SQL), so a client can check each event's row without asking anyone.

The truth does not depend on pgevents' event log: a row with ``rev = R`` in the table means
the writer committed exactly the changes ``(k, 0)`` (its INSERT) … ``(k, R)`` (its UPDATEs),
whatever happened to the connections that made them.
"""

from __future__ import annotations

import psycopg
from psycopg import sql as pgsql

from pgevents.core.sql import TriggerSpec

from .plan import CHANNELS

PAYLOAD_FUNCTION = """
CREATE OR REPLACE FUNCTION chaos_payload(k text, rev int, size int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(repeat(k || '/' || rev || ';', size / (length(k) + length(rev::text) + 2) + 1), size)
$$
"""

#: The columns of each table, all sent by its watch (a spec made here, not from the table).
COLUMNS = ("k", "rev", "size", "payload")

#: A change: (channel, key, revision).
Change = tuple[str, str, int]
#: An event as a client recorded it: (id, key, revision, row intact, monotonic time received).
Received = tuple[int, str, int, bool, float]


def payload(k: str, rev: int, size: int) -> str:
    unit = f"{k}/{rev};"
    return (unit * (size // len(unit) + 1))[:size]


def create(url: str) -> None:
    """The tables, the payload function and a durable watch (INSERT, UPDATE) on each."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PAYLOAD_FUNCTION)
        for table in CHANNELS:
            conn.execute(
                pgsql.SQL(
                    "CREATE TABLE {} (k text PRIMARY KEY, rev int NOT NULL DEFAULT 0,"
                    " size int NOT NULL, payload text NOT NULL)"
                ).format(pgsql.Identifier(table))
            )
            spec = TriggerSpec(table=table, channel=table, events=("INSERT", "UPDATE"), columns=COLUMNS)
            for statement in spec.create_statements():
                conn.execute(statement)


def truth(url: str) -> set[Change]:
    """Every change committed to the watched tables."""
    changes: set[Change] = set()
    with psycopg.connect(url) as conn:
        for table in CHANNELS:
            rows = conn.execute(pgsql.SQL("SELECT k, rev FROM {}").format(pgsql.Identifier(table))).fetchall()
            for k, rev in rows:
                changes.update((table, k, r) for r in range(rev + 1))
    return changes
