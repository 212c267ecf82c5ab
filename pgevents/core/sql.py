"""Pure SQL text per watch: its triggers, their drift digest, LISTEN, a hand-made event.

The database objects themselves (the event log, ``pgevents_notify()``, the sequencer) are
created by the app's migrations, whose SQL is frozen per version in
``pgevents/migrations/sql/``; this module composes what differs per watch. Nothing here
touches a connection. Identifiers are always composed with ``psycopg.sql``
(``Identifier``/``Literal``), never pasted into strings.

The trigger function's one argument is the watch's JSON configuration
(:meth:`TriggerSpec.config`): ``{"channel", "durable", "notify", "include", "exclude",
"referencing"}``; schema and table names are data there (JSON values), never spliced into SQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from pgevents.core.envelope import INTERNAL_CHANNEL

#: Version of ``pgevents_notify()`` the latest migration installs (its ``COMMENT`` says
#: ``pgevents vN``). Part of every trigger's digest: a new function version makes installed
#: triggers ``outdated`` until ``pgevents_sync`` re-creates them.
SCHEMA_VERSION = 2

ALL_EVENTS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


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


@dataclass(frozen=True)
class TriggerSpec:
    """Everything that defines the triggers of one watched table."""

    table: str
    channel: str
    schema: str = "public"
    events: tuple[str, ...] = ALL_EVENTS
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    durable: bool = True
    notify: bool = True
    #: UPDATEs fire only when one of these columns changes (empty: when any column changes).
    update_columns: tuple[str, ...] = field(default=())
    #: Referencing tables whose channels get an ids-only event when a watched row is updated.
    referencing: tuple[Reference, ...] = field(default=())

    def __post_init__(self) -> None:
        bad = [e for e in self.events if e not in ALL_EVENTS]
        if bad or not self.events:
            raise ValueError(f"events must be a non-empty subset of {ALL_EVENTS}, got {self.events!r}")
        if self.include and self.exclude:
            overlap = set(self.include) & set(self.exclude)
            if overlap:
                raise ValueError(f"columns both included and excluded: {sorted(overlap)}")
        if self.referencing and "UPDATE" not in self.events:
            raise ValueError("referencing tables are notified on UPDATE: the watch must include UPDATE")

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {"channel": self.channel, "durable": self.durable, "notify": self.notify}
        if self.include:
            cfg["include"] = list(self.include)
        if self.exclude:
            cfg["exclude"] = list(self.exclude)
        if self.referencing:
            cfg["referencing"] = [ref.config() for ref in self.referencing]
        return cfg

    @property
    def digest(self) -> str:
        """Stable hash of the definition, stored in the trigger's comment to detect drift."""
        blob = json.dumps(
            [SCHEMA_VERSION, self.schema, self.table, sorted(self.events), self.config(), list(self.update_columns)],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def base_name(self) -> str:
        """Trigger-name stem, unique per (schema, table, channel) and well under 63 bytes."""
        key = hashlib.sha256(f"{self.schema}\x00{self.table}\x00{self.channel}".encode()).hexdigest()[:12]
        return f"pgevents_{key}"

    def trigger_names(self) -> list[str]:
        return [name for name, _ in self._parts()]

    def _parts(self) -> list[tuple[str, sql.Composable]]:
        base = self.base_name
        parts: list[tuple[str, sql.Composable]] = []
        ins_del = [e for e in ("INSERT", "DELETE") if e in self.events]
        if ins_del:
            parts.append(
                (
                    f"{base}_r",
                    sql.SQL("AFTER {} ON {} FOR EACH ROW").format(
                        sql.SQL(" OR ").join(sql.SQL(e) for e in ins_del), self.qualified
                    ),
                )
            )
        if "UPDATE" in self.events:
            changed: sql.Composable
            if self.update_columns:
                changed = sql.SQL(" OR ").join(
                    sql.SQL("OLD.{c} IS DISTINCT FROM NEW.{c}").format(c=sql.Identifier(c)) for c in self.update_columns
                )
            else:
                changed = sql.SQL("OLD.* IS DISTINCT FROM NEW.*")
            parts.append(
                (f"{base}_u", sql.SQL("AFTER UPDATE ON {} FOR EACH ROW WHEN ({})").format(self.qualified, changed))
            )
        if "TRUNCATE" in self.events:
            parts.append((f"{base}_t", sql.SQL("AFTER TRUNCATE ON {} FOR EACH STATEMENT").format(self.qualified)))
        return parts

    @property
    def qualified(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))

    def create_statements(self) -> list[sql.Composed]:
        """DROP-then-CREATE statements: running them again replaces the triggers (idempotent)."""
        arg = sql.Literal(json.dumps(self.config(), sort_keys=True))
        comment = sql.Literal(f"pgevents:{self.digest}")
        out: list[sql.Composed] = self.drop_statements()
        for name, clause in self._parts():
            out.append(
                sql.SQL("CREATE TRIGGER {} {} EXECUTE FUNCTION pgevents_notify({})").format(
                    sql.Identifier(name), clause, arg
                )
            )
            out.append(
                sql.SQL("COMMENT ON TRIGGER {} ON {} IS {}").format(sql.Identifier(name), self.qualified, comment)
            )
        return out

    def drop_statements(self) -> list[sql.Composed]:
        base = self.base_name
        return [
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(f"{base}_{suffix}"), self.qualified)
            for suffix in ("r", "u", "t")
        ]


def listen(channels: Iterable[str]) -> list[sql.Composed]:
    """``LISTEN`` statements with quoted identifiers (unquoted names would fold to lower case)."""
    return [sql.SQL("LISTEN {}").format(sql.Identifier(c)) for c in channels]


def render(statements: Sequence[sql.Composable]) -> str:
    """Statements as text, for dry runs and migrations' ``sqlmigrate`` output."""
    return ";\n".join(s.as_string(None) for s in statements) + ";"


def probe_event(spec: TriggerSpec) -> list[sql.Composed]:
    """Statements that send one hand-made event (the admin's "send a test event") on the spec's channel the way its trigger would:
    through the log (durable) or as a notification (not durable). ``op`` and ``row`` are null,
    so clients cannot mistake it for a row change."""
    if spec.durable:
        return [
            sql.SQL(
                "INSERT INTO pgevents_event (channel, op, schema_name, table_name) VALUES ({}, NULL, {}, {})"
            ).format(sql.Literal(spec.channel), sql.Literal(spec.schema), sql.Literal(spec.table)),
            sql.SQL("SELECT pg_notify({}, '')").format(sql.Literal(INTERNAL_CHANNEL)),
        ]
    message = json.dumps({"channel": spec.channel, "op": None, "schema": spec.schema, "table": spec.table})
    return [
        sql.SQL("SELECT pg_notify({}, ({}::jsonb || jsonb_build_object('at', clock_timestamp()))::text)").format(
            sql.Literal(INTERNAL_CHANNEL), sql.Literal(message)
        )
    ]
