"""Pure SQL text per watch: its triggers, their drift digest, LISTEN, a hand-made event.

The database objects themselves (the event log, ``pgevents_notify()``, the sequencer) are
created by the app's migrations, whose SQL is frozen per version in
``pgevents/migrations/sql/``; this module composes what differs per watch. Nothing here
touches a connection. Identifiers are always composed with ``psycopg.sql``
(``Identifier``/``Literal``), never pasted into strings.

The trigger function's arguments (since v3): the watch's JSON configuration
(:meth:`TriggerSpec.config`: ``{"channel", "durable", "notify", "columns", "exclude",
"referencing"}``), then the columns it sends and the table's other columns as ``text[]``
literals, both decided when the spec was built. Schema and table names are data there (JSON
values), never spliced into SQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from pgevents.core.envelope import INTERNAL_CHANNEL, WAKE_LOG, WAKE_TRANSIENT

#: Version of ``pgevents_notify()`` the latest migration installs (its ``COMMENT`` says
#: ``pgevents vN``). Part of every trigger's digest: a new function version makes installed
#: triggers ``outdated`` until ``pgevents_sync`` re-creates them.
SCHEMA_VERSION = 4

ALL_EVENTS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
#: The installed ``pgevents_notify()``'s version, in SQL (0 when its comment says none).
FUNCTION_VERSION = (
    "coalesce(substring(pg_catalog.obj_description('pgevents_notify()'::pg_catalog.regprocedure, 'pg_proc')"
    " FROM 'pgevents v([0-9]+)')::int, 0)"
)


@dataclass(frozen=True)
class Reference:
    """A table whose foreign key points at the watched table, and the channel told about it.

    ``columns`` (on the referencing table) pair up with ``keys`` (on the watched table), in
    foreign-key order.
    """

    channel: str
    table: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    schema: str = "public"

    def __post_init__(self) -> None:
        if not self.columns or len(self.columns) != len(self.keys):
            raise ValueError(f"a reference needs as many columns as keys, got {self.columns!r} and {self.keys!r}")

    def config(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "schema": self.schema,
            "table": self.table,
            "columns": list(self.columns),
            "keys": list(self.keys),
        }


def array_literal(items: Iterable[str]) -> str:
    """A PostgreSQL ``text[]`` literal (``{"a","b"}``): trigger arguments are strings, and the
    trigger function casts them with ``::text[]``, which is cheaper per row than JSON."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


@dataclass(frozen=True)
class TriggerSpec:
    """Everything that defines the triggers of one watched table.

    ``columns`` are the columns its events carry and ``hidden`` the table's other columns,
    both as they were when the spec was built from the table (``installation.build_spec``):
    the trigger function drops a column that is in neither (one added since), so a new column
    is sent only once a sync has decided it may be. UPDATEs that change none of the sent
    columns (or of ``update_columns``, when given) fire no event.
    """

    table: str
    channel: str
    schema: str = "public"
    events: tuple[str, ...] = ALL_EVENTS
    columns: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    durable: bool = True
    notify: bool = True
    #: UPDATEs fire only when one of these columns changes (empty: when a sent column changes).
    update_columns: tuple[str, ...] = field(default=())
    #: Referencing tables whose channels get an ids-only event when a watched row is updated.
    referencing: tuple[Reference, ...] = field(default=())

    def __post_init__(self) -> None:
        bad = [e for e in self.events if e not in ALL_EVENTS]
        if bad or not self.events:
            raise ValueError(f"events must be a non-empty subset of {ALL_EVENTS}, got {self.events!r}")
        overlap = set(self.columns) & set(self.hidden)
        if overlap:
            raise ValueError(f"columns both sent and hidden: {sorted(overlap)}")
        if self.referencing and "UPDATE" not in self.events:
            raise ValueError("referencing tables are notified on UPDATE: the watch must include UPDATE")

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {
            "channel": self.channel,
            "durable": self.durable,
            "notify": self.notify,
            "columns": list(self.columns),
        }
        if self.hidden:
            # Read only by the v2 function: a trigger built before migration 0004 replaced it
            # (a user's migration that runs first) still leaves these columns out.
            cfg["exclude"] = list(self.hidden)
        if self.referencing:
            cfg["referencing"] = [ref.config() for ref in self.referencing]
        return cfg

    @property
    def digest(self) -> str:
        """Stable hash of the definition, stored in the trigger's comment to detect drift."""
        blob = json.dumps(
            [
                SCHEMA_VERSION,
                self.schema,
                self.table,
                sorted(self.events),
                self.config(),
                list(self.hidden),
                list(self.update_columns),
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def base_name(self) -> str:
        """Trigger-name stem, unique per (schema, table, channel) and well under 63 bytes."""
        key = hashlib.sha256(f"{self.schema}\x00{self.table}\x00{self.channel}".encode()).hexdigest()[:12]
        return f"pgevents_{key}"

    def trigger_names(self) -> list[str]:
        return [name for name, _, _ in self._parts()]

    def _parts(self) -> list[tuple[str, sql.Composable, sql.Composable | None]]:
        """(name, clause, the clause under a trigger function before v4 or None)."""
        base = self.base_name
        parts: list[tuple[str, sql.Composable, sql.Composable | None]] = []
        # INSERT and DELETE: statement triggers reading the rows from their transition table
        # (one trigger call and one log INSERT per statement, not per row). A trigger with a
        # transition table fires on one event only, hence two. Function versions before v4
        # know only row triggers for these (a project's migration can run before pgevents'),
        # and a partitioned table keeps row triggers (see ``_by_table``).
        for event, suffix, transition in (
            ("INSERT", "r", "NEW TABLE AS pgevents_new"),
            ("DELETE", "d", "OLD TABLE AS pgevents_old"),
        ):
            if event in self.events:
                parts.append(
                    (
                        f"{base}_{suffix}",
                        sql.SQL("AFTER {} ON {} REFERENCING {} FOR EACH STATEMENT").format(
                            sql.SQL(event), self.qualified, sql.SQL(transition)
                        ),
                        sql.SQL("AFTER {} ON {} FOR EACH ROW").format(sql.SQL(event), self.qualified),
                    )
                )
        compared = self.update_columns or self.columns
        if "UPDATE" in self.events and compared:
            # Compared by binary image: every type has one (json, point… have no "=" operator).
            row = sql.SQL("ROW({})")
            changed = sql.SQL("pg_catalog.record_image_ne({}, {})").format(
                row.format(sql.SQL(", ").join(sql.SQL("OLD.{}").format(sql.Identifier(c)) for c in compared)),
                row.format(sql.SQL(", ").join(sql.SQL("NEW.{}").format(sql.Identifier(c)) for c in compared)),
            )
            parts.append(
                (
                    f"{base}_u",
                    sql.SQL("AFTER UPDATE ON {} FOR EACH ROW WHEN ({})").format(self.qualified, changed),
                    None,
                )
            )
        if "TRUNCATE" in self.events:
            parts.append((f"{base}_t", sql.SQL("AFTER TRUNCATE ON {} FOR EACH STATEMENT").format(self.qualified), None))
        return parts

    @property
    def qualified(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))

    def create_statements(self) -> list[sql.Composed]:
        """DROP-then-CREATE statements: running them again replaces the triggers (idempotent)."""
        args = sql.SQL(", ").join(
            [
                sql.Literal(json.dumps(self.config(), sort_keys=True)),
                sql.Literal(array_literal(self.columns)),
                sql.Literal(array_literal(self.hidden)),
            ]
        )
        out: list[sql.Composed] = self.drop_statements()
        for name, clause, before_v4 in self._parts():
            create, comment = self._create(name, clause, args, self.digest)
            if before_v4 is None:
                out += [create, comment]
                continue
            # Under an older function: a row trigger, marked outdated so that the first sync
            # after the function's upgrade (migrate runs one) replaces it.
            row = self._create(name, before_v4, args, self.digest)
            outdated = self._create(name, before_v4, args, f"{self.digest}:row")
            out.append(_by_table(self.qualified.as_string(None), (create, comment), row, outdated))
        return out

    def _create(
        self, name: str, clause: sql.Composable, args: sql.Composable, digest: str
    ) -> tuple[sql.Composed, sql.Composed]:
        return (
            sql.SQL("CREATE TRIGGER {} {} EXECUTE FUNCTION pgevents_notify({})").format(
                sql.Identifier(name), clause, args
            ),
            sql.SQL("COMMENT ON TRIGGER {} ON {} IS {}").format(
                sql.Identifier(name), self.qualified, sql.Literal(f"pgevents:{digest}")
            ),
        )

    def drop_statements(self) -> list[sql.Composed]:
        base = self.base_name
        return [
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(f"{base}_{suffix}"), self.qualified)
            for suffix in ("r", "d", "u", "t")
        ]


def _by_table(
    table: str, statement: Sequence[sql.Composed], row: Sequence[sql.Composed], outdated: Sequence[sql.Composed]
) -> sql.Composed:
    """A ``DO`` block creating INSERT or DELETE triggers as the database allows: ``row`` on a
    partitioned table (only row triggers are cloned to its partitions, which a statement can
    write directly), ``statement`` under trigger function v4 or later, else ``outdated``."""

    def execute(statements: Sequence[sql.Composed]) -> str:
        return "".join(f"EXECUTE {sql.Literal(s.as_string(None)).as_string(None)}; " for s in statements)

    partitioned = (
        "(SELECT c.relkind FROM pg_catalog.pg_class c"
        f" WHERE c.oid = {sql.Literal(table).as_string(None)}::pg_catalog.regclass) = 'p'"
    )
    body = (
        f"BEGIN IF {partitioned} THEN {execute(row)}ELSIF {FUNCTION_VERSION} >= 4 THEN {execute(statement)}"
        f"ELSE {execute(outdated)}END IF; END"
    )
    return sql.SQL("DO {}").format(sql.Literal(body))


def listen(channels: Iterable[str]) -> list[sql.Composed]:
    """``LISTEN`` statements with quoted identifiers (unquoted names would fold to lower case)."""
    return [sql.SQL("LISTEN {}").format(sql.Identifier(c)) for c in channels]


def render(statements: Sequence[sql.Composable]) -> str:
    """Statements as text, for dry runs and migrations' ``sqlmigrate`` output."""
    return ";\n".join(s.as_string(None) for s in statements) + ";"


def probe_event(spec: TriggerSpec) -> list[sql.Composed]:
    """Statements that send one hand-made event (the admin's "send a test event") on the
    spec's channel the way its trigger would: through the log (durable) or the transient
    table (not durable), then a wake-up. ``op`` and ``row`` are null, so clients cannot
    mistake it for a row change. They write pgevents' tables: only the owner role may run
    them (see docs/security.md)."""
    table, wake = ("pgevents_event", WAKE_LOG) if spec.durable else ("pgevents_transient", WAKE_TRANSIENT)
    return [
        sql.SQL("INSERT INTO {} (channel, op, schema_name, table_name) VALUES ({}, NULL, {}, {})").format(
            sql.Identifier(table), sql.Literal(spec.channel), sql.Literal(spec.schema), sql.Literal(spec.table)
        ),
        sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(INTERNAL_CHANNEL), sql.Literal(wake)),
    ]
