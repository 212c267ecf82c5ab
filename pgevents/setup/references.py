"""Resolve a watch's ``notify_referencing`` entries against the catalog's foreign keys.

A page that shows a child row together with its parent's fields (a book with its author's
name) goes stale when the parent changes, although no child row did. The watch on the parent
can name the referencing tables; each entry becomes a :class:`~pgevents.core.sql.Reference` whose
column pairs come from the real foreign key, so the trigger only ever copies key values.

Entries: ``"books"`` (table and channel ``books``, in the watch's schema, through its only
foreign key to the watched table) or a mapping with ``table`` and optionally ``channel``,
``schema`` and ``columns`` (to pick one of several foreign keys, or to pair columns with
``keys`` when there is no declared foreign key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pgevents.core.sql import Reference

Entry = str | Mapping[str, Any]

_FOREIGN_KEYS = """
SELECT ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, n)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.n),
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, n)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.n)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class fc ON fc.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype = 'f' AND n.nspname = %s AND c.relname = %s AND fn.nspname = %s AND fc.relname = %s
ORDER BY con.conname
"""

_KEYS = {"table", "channel", "schema", "columns", "keys"}


def foreign_keys(
    cursor: Any, schema: str, table: str, parent_schema: str, parent: str
) -> list[tuple[list[str], list[str]]]:
    """``(columns, referenced keys)`` of each foreign key from ``schema.table`` to ``parent``."""
    cursor.execute(_FOREIGN_KEYS, [schema, table, parent_schema, parent])
    return [(list(cols), list(keys)) for cols, keys in cursor.fetchall()]


def resolve(cursor: Any, entry: Entry, *, schema: str, table: str) -> Reference:
    """One entry of ``notify_referencing`` as a :class:`Reference`; ``ValueError`` if it cannot be."""
    spec: dict[str, Any] = {"table": entry} if isinstance(entry, str) else dict(entry)
    unknown = set(spec) - _KEYS
    if unknown or not isinstance(spec.get("table"), str):
        raise ValueError(f"notify_referencing entry {entry!r}: needs 'table', allows {sorted(_KEYS)}")
    ref_schema = str(spec.get("schema", schema))
    ref_table = str(spec["table"])
    columns = list(spec.get("columns") or [])
    keys = list(spec.get("keys") or [])
    found = foreign_keys(cursor, ref_schema, ref_table, schema, table)
    if columns and not keys:
        matching = [k for c, k in found if c == columns]
        if not matching:
            raise ValueError(f"{ref_schema}.{ref_table}{tuple(columns)} is no foreign key to {schema}.{table}")
        keys = matching[0]
    elif not columns:
        if len(found) != 1:
            what = "no foreign key" if not found else f"{len(found)} foreign keys (name one with 'columns')"
            raise ValueError(f"{ref_schema}.{ref_table} has {what} to {schema}.{table}")
        columns, keys = found[0]
    return Reference(
        channel=str(spec.get("channel", ref_table)),
        table=ref_table,
        schema=ref_schema,
        columns=tuple(columns),
        keys=tuple(keys),
    )


def resolve_all(cursor: Any, entries: Sequence[Entry], *, schema: str, table: str) -> tuple[Reference, ...]:
    return tuple(resolve(cursor, entry, schema=schema, table=table) for entry in entries)
