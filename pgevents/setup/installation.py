"""Install, remove and inspect per-table triggers (sync; used by migrations, admin, commands).

Which columns a watch sends is decided here, when its triggers are built, from the table's
columns at that moment: ``include`` (or every column) minus ``exclude`` minus
sensitive-looking ones (``PGEVENTS["SENSITIVE_COLUMNS"]``, unless ``include`` names them).
The trigger carries that list, so a column added to the table later is sent by no trigger
until the next sync (``pgevents_sync``, which ``migrate`` runs) decides about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from pgevents import conf
from pgevents.core.names import BadChannel, validate_channel
from pgevents.core.options import WatchOptions
from pgevents.core.sql import Reference, TriggerSpec
from pgevents.setup import references
from pgevents.store import columns

#: Whether the database has a watch's triggers exactly as configured.
TriggerState = Literal["installed", "outdated", "missing"]


class WatchError(ValueError):
    """A watch that cannot be installed as configured (missing table or column…)."""


def table_columns(cursor: Any, schema: str, table: str) -> list[str]:
    cursor.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relkind IN ('r', 'p') ORDER BY a.attnum",
        [schema, table],
    )
    return [row[0] for row in cursor.fetchall()]


def table_exists(cursor: Any, schema: str, table: str) -> bool:
    return bool(table_columns(cursor, schema, table))


#: Tables of pgevents itself: never offered as something to watch.
INTERNAL_TABLES = ("pgevents_event", "pgevents_cursor", "pgevents_transient", "pgevents_presence", "pgevents_watch")


def tables(cursor: Any) -> list[tuple[str, str]]:
    """Every ordinary or partitioned table outside the system schemas, as (schema, table).

    Read from ``pg_catalog``, so tables no Django model maps are included.
    """
    cursor.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND left(n.nspname, 3) <> 'pg_'"
        " AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2"
    )
    return [(s, t) for s, t in cursor.fetchall() if not (s == "public" and t in INTERNAL_TABLES)]


def is_sensitive(column: str, patterns: Iterable[str] | None = None) -> bool:
    name = column.lower()
    return any(p in name for p in (conf.get().sensitive_columns if patterns is None else patterns))


def spec(cursor: Any, table: str, options: WatchOptions) -> TriggerSpec:
    """The triggers of a watch on ``table``, checked against the real table (``WatchError``
    says what is wrong): the columns it sends, decided now, sensitive-looking ones left out
    unless included."""
    o = options
    try:
        validate_channel(o.channel)
    except BadChannel as exc:
        raise WatchError(f"invalid channel {o.channel!r}: {exc}") from None
    names = table_columns(cursor, o.schema, table)
    if not names:
        raise WatchError(f"table {o.schema}.{table} does not exist")
    unknown = [c for c in (*o.include, *o.exclude, *o.update_columns) if c not in names]
    if unknown:
        raise WatchError(f"table {o.schema}.{table} has no column(s) {', '.join(unknown)}")
    overlap = sorted(set(o.include) & set(o.exclude))
    if overlap:
        raise WatchError(f"columns both included and excluded: {', '.join(overlap)}")
    sent = [c for c in names if (c in o.include if o.include else True) and c not in o.exclude]
    sent = [c for c in sent if c in o.include or not is_sensitive(c)]
    hidden = [c for c in names if c not in sent]
    unsent = [c for c in o.update_columns if c not in sent]
    if unsent:
        raise WatchError(
            f"update_columns {', '.join(unsent)} of {o.schema}.{table} are not sent: "
            "an event for a change of them would show no change"
        )
    refs = _references(cursor, o.notify_referencing, o.schema, table, names, hidden)
    try:
        return TriggerSpec(
            table=table,
            channel=o.channel,
            schema=o.schema,
            events=tuple(e.upper() for e in o.events),
            columns=tuple(sent),
            hidden=tuple(hidden),
            durable=conf.get().durable if o.durable is None else o.durable,
            notify=o.notify,
            update_columns=o.update_columns,
            referencing=refs,
        )
    except ValueError as exc:
        raise WatchError(str(exc)) from None


def build_spec(cursor: Any, *, table: str, **options: Any) -> TriggerSpec:
    """``spec`` with the options as keyword arguments (those of ``WatchOptions``)."""
    return spec(cursor, table, WatchOptions(**options))


def _references(
    cursor: Any,
    entries: Sequence[str | Mapping[str, Any]],
    schema: str,
    table: str,
    columns: list[str],
    hidden: Sequence[str],
) -> tuple[Reference, ...]:
    """Resolved references, checked: real columns, valid channels, no hidden column as a key."""
    try:
        refs = references.resolve_all(cursor, entries, schema=schema, table=table)
    except ValueError as exc:
        raise WatchError(str(exc)) from None
    for ref in refs:
        try:
            validate_channel(ref.channel)
        except BadChannel as exc:
            raise WatchError(f"invalid channel {ref.channel!r}: {exc}") from None
        ref_columns = table_columns(cursor, ref.schema, ref.table)
        missing = [c for c in ref.columns if c not in ref_columns] + [k for k in ref.keys if k not in columns]
        if not ref_columns or missing:
            raise WatchError(f"reference {ref.schema}.{ref.table}: no column(s) {', '.join(missing) or '(no table)'}")
        secret = [k for k in ref.keys if k in hidden]
        if secret:
            raise WatchError(f"reference {ref.schema}.{ref.table} would send excluded column(s) {', '.join(secret)}")
    return refs


def install(cursor: Any, spec: TriggerSpec) -> None:
    for statement in spec.create_statements():
        cursor.execute(statement.as_string(None))


def remove(cursor: Any, spec: TriggerSpec) -> None:
    """Drop the spec's triggers; nothing to do when the table itself is gone (so are they)."""
    if not table_exists(cursor, spec.schema, spec.table):
        return
    for statement in spec.drop_statements():
        cursor.execute(statement.as_string(None))


def trigger_state(cursor: Any, spec: TriggerSpec) -> TriggerState:
    """Whether the database has exactly these triggers (drift made by hand is detected)."""
    cursor.execute(
        "SELECT t.tgname, obj_description(t.oid, 'pg_trigger') FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND t.tgname LIKE %s",
        [spec.schema, spec.table, spec.base_name + "\\_%"],
    )
    found = dict(cursor.fetchall())
    expected = spec.trigger_names()
    if not found:
        return "missing"
    if sorted(found) != sorted(expected) or any(found[n] != f"pgevents:{spec.digest}" for n in expected):
        return "outdated"
    return "installed"


@dataclass(frozen=True)
class Installed:
    """The pgevents triggers on one table for one channel, as found in the database."""

    schema: str
    table: str
    base_name: str
    channel: str
    events: tuple[str, ...]
    config: dict[str, Any]
    names: tuple[str, ...]
    #: The columns their events carry.
    sent: frozenset[str]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.schema, self.table, self.base_name)

    def drop_statements(self) -> list[sql.Composed]:
        """Drop exactly these triggers, whatever definition created them."""
        table = sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))
        return [sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(n), table) for n in self.names]


# pg_trigger.tgtype bits (PostgreSQL's include/catalog/pg_trigger.h), in ALL_EVENTS order.
_TYPE_BITS = (("INSERT", 4), ("UPDATE", 16), ("DELETE", 8), ("TRUNCATE", 32))


def installed(cursor: Any) -> list[Installed]:
    """Every trigger calling ``pgevents_notify()`` in the database, grouped per watch.

    Whoever installed them (a migration, the admin, a script), this is what really runs.
    """
    groups: dict[tuple[str, str, str], list[columns.Trigger]] = {}
    for trigger in columns.triggers_sync(cursor):
        name = trigger.name
        base = name.rsplit("_", 1)[0] if name.count("_") >= 2 else name
        groups.setdefault((trigger.schema, trigger.table, base), []).append(trigger)
    return [
        Installed(
            schema=schema,
            table=table,
            base_name=base,
            channel=found[-1].channel,
            events=tuple(event for event, bit in _TYPE_BITS if any(t.tgtype & bit for t in found)),
            config=found[-1].config,
            names=tuple(t.name for t in found),
            sent=found[-1].sent,
        )
        for (schema, table, base), found in groups.items()
    ]
