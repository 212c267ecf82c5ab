"""The GRANT / REVOKE statements of the role table in docs/security.md (pure).

Roles, least privilege first:

- **everyone** who can connect (``PUBLIC``): nothing on pgevents' objects. (Any role can
  still ``NOTIFY`` any channel and ``LISTEN``: PostgreSQL has no privilege for either.)
- **writer**, any role that writes watched tables: nothing either. The trigger function
  runs with its owner's rights (``SECURITY DEFINER``), so writes to watched tables log their
  events without the writer being able to write, read or forge them.
- **listener** (``runlisten``): reads the log and runs the sequencer, the pruner and the
  transient drain — the only functions that write ids and cursors — and says whether it is
  polling (``pgevents_wake``, both forms: whether writers may skip their wake-ups).
- **web** (the ASGI servers): reads the log (replays) and writes its presence rows.
- **owner** (``migrate``, ``pgevents_sync``, the admin's watches): owns every object above;
  not granted here, it has every right on what it owns.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

TABLES = ("pgevents_event", "pgevents_cursor", "pgevents_transient", "pgevents_presence", "pgevents_watch")

#: Function signatures, with ``{schema}`` for the schema the log type lives in.
FUNCTIONS = {
    "notify": ("pgevents_notify", ()),
    "frame": ("pgevents_frame", ("{schema}.pgevents_event",)),
    "assign": ("pgevents_assign", ("integer", "bigint")),
    "prune": ("pgevents_prune", ("double precision", "integer")),
    "take_transient": ("pgevents_take_transient", ("integer",)),
    "wake": ("pgevents_wake", ("boolean",)),
    "wake_transient": ("pgevents_wake", ("boolean", "boolean")),
    "only_keys": ("pgevents_only_keys", ("jsonb", "text[]")),  # the trigger function's, the owner's alone
}

READ = ("pgevents_event", "pgevents_cursor")
LISTENER_FUNCTIONS = ("assign", "prune", "take_transient", "wake", "wake_transient", "frame")
WEB_FUNCTIONS = ("frame",)


def _tables(schema: str, names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(schema, name) for name in names)


def _functions(schema: str, keys: Sequence[str]) -> sql.Composable:
    out = []
    for key in keys:
        name, args = FUNCTIONS[key]
        types = [sql.Identifier(schema, a.split(".", 1)[1]) if a.startswith("{schema}.") else sql.SQL(a) for a in args]
        out.append(sql.SQL("{}({})").format(sql.Identifier(schema, name), sql.SQL(", ").join(types)))
    return sql.SQL(", ").join(out)


def _connect(database: str, schema: str, role: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), r),
    ]


def public(schema: str) -> list[sql.Composed]:
    """Nothing for ``PUBLIC`` (migration 0004 does this too; repeated so the script stands alone)."""
    return [
        sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC").format(_tables(schema, TABLES)),
        sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(_functions(schema, list(FUNCTIONS))),
    ]


def listener(database: str, schema: str, role: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        *_connect(database, schema, role),
        sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(_tables(schema, READ), r),
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(_functions(schema, LISTENER_FUNCTIONS), r),
    ]


def web(database: str, schema: str, role: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        *_connect(database, schema, role),
        sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(_tables(schema, READ), r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {}").format(
            _tables(schema, ("pgevents_presence",)), r
        ),
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(_functions(schema, WEB_FUNCTIONS), r),
    ]


def writer(schema: str, role: str) -> list[sql.Composed]:
    """Takes back whatever a writer was given on pgevents' objects (older versions told
    writers to INSERT into the log); the rights on the watched tables are the project's own."""
    r = sql.Identifier(role)
    return [
        sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(_tables(schema, TABLES), r),
        sql.SQL("REVOKE ALL ON FUNCTION {} FROM {}").format(_functions(schema, list(FUNCTIONS)), r),
    ]


def server_advice(server_version_num: int) -> list[str]:
    """What else the role table needs on this server, outside pgevents' objects (comment lines)."""
    if server_version_num < 150000:
        return [
            "PostgreSQL 14 and older let every role create objects in schema public: also run",
            "  REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        ]
    return []


def script(
    database: str,
    schema: str,
    *,
    listeners: Sequence[str] = (),
    webs: Sequence[str] = (),
    writers: Sequence[str] = (),
) -> list[tuple[str, list[sql.Composed]]]:
    """``(comment, statements)`` sections: PUBLIC first, then each role given."""
    sections = [("everyone who can connect (PUBLIC): nothing on pgevents' objects", public(schema))]
    sections += [(f"listener {role!r} (runlisten)", listener(database, schema, role)) for role in listeners]
    sections += [(f"web {role!r} (ASGI servers)", web(database, schema, role)) for role in webs]
    sections += [
        (f"writer {role!r}: nothing on pgevents' objects (its triggers run as the owner)", writer(schema, role))
        for role in writers
    ]
    return sections
