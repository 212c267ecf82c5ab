"""Which tables feed a channel and which of their columns it carries, read from the triggers.

Row filters are checked against this before a subscription starts, so a filter on a column
that no watch sends (a typo, an excluded or sensitive column) is refused with a clear error
instead of silently matching nothing; ``policy.require_permission`` finds the models behind
a channel the same way. The answer comes from the database itself (each trigger's
configuration argument and its table's columns), so it holds for watches made by
migrations, by the admin or by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

QUERY = """
SELECT t.tgargs, n.nspname::text, c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum > 0 AND NOT a.attisdropped
WHERE t.tgfoid = to_regproc('pgevents_notify')
GROUP BY t.oid, t.tgargs, n.nspname, c.relname
"""


@dataclass(frozen=True)
class Source:
    """One watched table feeding a channel, and the columns its events carry."""

    schema: str
    table: str
    columns: frozenset[str]


def visible(config: dict[str, Any], columns: list[str]) -> frozenset[str]:
    """The columns a trigger with ``config`` sends: ``include`` (or all) minus ``exclude``."""
    include = config.get("include")
    chosen = [c for c in columns if c in include] if include else columns
    return frozenset(chosen) - frozenset(config.get("exclude") or ())


def parse_config(tgargs: bytes) -> dict[str, Any] | None:
    """A trigger's first argument (PostgreSQL stores them NUL-terminated), as JSON."""
    first = bytes(tgargs).split(b"\x00", 1)[0]
    try:
        config = json.loads(first.decode("utf-8"))
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def sources_from_rows(rows: list[tuple[Any, ...]], channel: str) -> list[Source]:
    found = []
    for tgargs, schema, table, columns in rows:
        config = parse_config(tgargs)
        if config is not None and config.get("channel") == channel:
            found.append(Source(schema, table, visible(config, list(columns))))
    return found


async def sources(conn: psycopg.AsyncConnection[Any], channel: str) -> list[Source]:
    """The watched tables feeding ``channel`` (empty for a plain-NOTIFY channel)."""
    cur = await conn.execute(QUERY)
    return sources_from_rows(list(await cur.fetchall()), channel)


def sources_sync(cursor: Any, channel: str) -> list[Source]:
    """``sources`` on a Django cursor, for sync policy hooks."""
    cursor.execute(QUERY)
    return sources_from_rows(list(cursor.fetchall()), channel)
