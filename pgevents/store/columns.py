"""The pgevents triggers in the database, and which columns each one sends.

Read from the catalog itself (each trigger's configuration argument and its table's columns),
so the answer holds for watches made by migrations, by the admin or by hand. One query and
one parser serve everyone who asks: row filters are checked against the columns a channel
carries before a subscription starts (a filter on a column no watch sends is refused with a
clear error instead of silently matching nothing); ``policy.require_permission`` finds the
models behind a channel; ``pgevents_sync`` and the system checks compare what is installed
with what is configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

#: Every trigger calling ``pgevents_notify()``, with its table's columns in table order.
QUERY = """
SELECT n.nspname::text, c.relname::text, t.tgname::text, t.tgtype, t.tgargs,
       array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum > 0 AND NOT a.attisdropped
WHERE t.tgfoid = to_regproc('pgevents_notify') AND NOT t.tgisinternal
GROUP BY t.oid, n.nspname, c.relname, t.tgname, t.tgtype, t.tgargs
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class Trigger:
    """One pgevents trigger as the database has it."""

    schema: str
    table: str
    name: str
    #: ``pg_trigger.tgtype``: which events fire it (see ``installation.installed``).
    tgtype: int
    #: Its configuration argument (``TriggerSpec.config``); empty when unreadable.
    config: dict[str, Any]
    #: Its table's columns, in table order.
    table_columns: tuple[str, ...]

    @property
    def channel(self) -> str:
        return str(self.config.get("channel", ""))

    @property
    def sent(self) -> frozenset[str]:
        """The columns its events carry."""
        return visible(self.config, self.table_columns)


@dataclass(frozen=True)
class Source:
    """One watched table feeding a channel, and the columns its events carry."""

    schema: str
    table: str
    columns: frozenset[str]


def visible(config: dict[str, Any], columns: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The columns a trigger with ``config`` sends, of the table's current ``columns``: the
    list decided at install (``columns``), or, for triggers of earlier versions, ``include``
    (or all) minus ``exclude``."""

    def names(key: str) -> frozenset[str] | None:
        value = config.get(key)
        return frozenset(c for c in value if isinstance(c, str)) if isinstance(value, list) else None

    sent = names("columns")
    if sent is not None:
        return frozenset(columns) & sent
    include = names("include")
    chosen = [c for c in columns if c in include] if include else columns
    return frozenset(chosen) - (names("exclude") or frozenset())


def parse_config(tgargs: bytes) -> dict[str, Any] | None:
    """A trigger's first argument (PostgreSQL stores them NUL-terminated), as JSON; None when
    it is not a JSON object (malformed, or nested too deep to decode)."""
    first = bytes(tgargs).split(b"\x00", 1)[0]
    try:
        config = json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def _triggers(rows: list[tuple[Any, ...]]) -> list[Trigger]:
    return [
        Trigger(schema, table, name, int(tgtype), parse_config(tgargs) or {}, tuple(columns))
        for schema, table, name, tgtype, tgargs, columns in rows
    ]


def triggers_sync(cursor: Any) -> list[Trigger]:
    """Every pgevents trigger, on a Django cursor."""
    cursor.execute(QUERY)
    return _triggers(list(cursor.fetchall()))


def _sources(found: list[Trigger], channel: str) -> list[Source]:
    return [Source(t.schema, t.table, t.sent) for t in found if t.channel == channel]


async def sources(conn: psycopg.AsyncConnection[Any], channel: str) -> list[Source]:
    """The watched tables feeding ``channel`` (empty for a plain-NOTIFY channel)."""
    cur = await conn.execute(QUERY)
    return _sources(_triggers(list(await cur.fetchall())), channel)


def sources_sync(cursor: Any, channel: str) -> list[Source]:
    """``sources`` on a Django cursor, for sync policy hooks."""
    return _sources(triggers_sync(cursor), channel)
