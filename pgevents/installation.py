"""Install, remove and inspect per-table triggers (sync; used by migrations, admin, commands).

Sensitive-looking columns (``PGEVENTS["SENSITIVE_COLUMNS"]``) are excluded at install time
unless the watch lists them in ``include``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from . import conf, references
from .sql import ALL_EVENTS, Reference, TriggerSpec

Status = Literal["installed", "outdated", "missing"]


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


def is_sensitive(column: str, patterns: Iterable[str] | None = None) -> bool:
    name = column.lower()
    return any(p in name for p in (conf.get().sensitive_columns if patterns is None else patterns))


def build_spec(
    cursor: Any,
    *,
    table: str,
    channel: str,
    schema: str = "public",
    events: Sequence[str] = ALL_EVENTS,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    durable: bool | None = None,
    notify: bool = True,
    update_columns: Sequence[str] = (),
    notify_referencing: Sequence[str | Mapping[str, Any]] = (),
) -> TriggerSpec:
    """A ``TriggerSpec`` checked against the real table, with sensitive columns excluded.

    ``notify_referencing`` names tables referencing this one (see :mod:`pgevents.references`).
    """
    from .names import BadChannel, validate_channel

    try:
        validate_channel(channel)
    except BadChannel as exc:
        raise WatchError(f"invalid channel {channel!r}: {exc}") from None
    columns = table_columns(cursor, schema, table)
    if not columns:
        raise WatchError(f"table {schema}.{table} does not exist")
    unknown = [c for c in (*include, *exclude, *update_columns) if c not in columns]
    if unknown:
        raise WatchError(f"table {schema}.{table} has no column(s) {', '.join(unknown)}")
    hidden = [c for c in columns if is_sensitive(c) and c not in include and c not in exclude]
    refs = _references(cursor, notify_referencing, schema, table, columns, (*exclude, *hidden))
    try:
        return TriggerSpec(
            table=table,
            channel=channel,
            schema=schema,
            events=tuple(e.upper() for e in events),
            include=tuple(include),
            exclude=tuple(exclude) + tuple(hidden),
            durable=conf.get().durable if durable is None else durable,
            notify=notify,
            update_columns=tuple(update_columns),
            referencing=refs,
        )
    except ValueError as exc:
        raise WatchError(str(exc)) from None


def _references(
    cursor: Any,
    entries: Sequence[str | Mapping[str, Any]],
    schema: str,
    table: str,
    columns: list[str],
    hidden: Sequence[str],
) -> tuple[Reference, ...]:
    """Resolved references, checked: real columns, valid channels, no hidden column as a key."""
    from .names import BadChannel, validate_channel

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
    for statement in spec.drop_statements():
        cursor.execute(statement.as_string(None))


def status(cursor: Any, spec: TriggerSpec) -> Status:
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
