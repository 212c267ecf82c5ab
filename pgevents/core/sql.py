"""Pure SQL text: the event log, the trigger function, the sequencer and per-table triggers.

Nothing here touches a connection. Identifiers are always composed with ``psycopg.sql``
(``Identifier``/``Literal``), never pasted into strings. ``SCHEMA_VERSION`` changes whenever
the function bodies change, so installed triggers can be compared with the code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from pgevents.core.envelope import INTERNAL_CHANNEL

SCHEMA_VERSION = 2

ROW_EVENTS = ("INSERT", "UPDATE", "DELETE")
ALL_EVENTS = (*ROW_EVENTS, "TRUNCATE")

#: NOTIFY payloads must be shorter than 8000 bytes; leave room for the server's own framing.
NOTIFY_LIMIT = 7990

# The event log. ``seq`` is the insertion order (taken when the writer inserts); ``id`` is
# the position in commit order, assigned by the single active sequencer (the listener) once
# the writer's transaction is visible. Clients only ever see ``id``.
CREATE_LOG = """
CREATE TABLE IF NOT EXISTS pgevents_event (
    seq bigserial PRIMARY KEY,
    id bigint UNIQUE,
    prev_id bigint,
    channel text NOT NULL,
    op text,
    schema_name text,
    table_name text,
    "row" jsonb,
    old jsonb,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS pgevents_event_pending ON pgevents_event (seq) WHERE id IS NULL;
CREATE INDEX IF NOT EXISTS pgevents_event_channel_id ON pgevents_event (channel, id) WHERE id IS NOT NULL;
CREATE TABLE IF NOT EXISTS pgevents_cursor (name text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO pgevents_cursor (name, value)
VALUES ('assigned', 0), ('published', 0), ('pruned', 0)
ON CONFLICT (name) DO NOTHING;
"""

DROP_LOG = """
DROP FUNCTION IF EXISTS pgevents_assign(integer, bigint);
DROP FUNCTION IF EXISTS pgevents_frame(pgevents_event);
DROP TABLE IF EXISTS pgevents_cursor;
DROP TABLE IF EXISTS pgevents_event;
"""

# The one trigger function. Its single argument is the watch's JSON configuration:
# {"channel", "durable", "notify", "include", "exclude", "referencing"}.
# "referencing" (v2) lists tables whose foreign keys point at the watched table:
# [{"channel", "schema", "table", "columns": [...], "keys": [...]}]. An UPDATE of a watched
# row then also emits, on each of those channels, one UPDATE event for the referencing table
# whose "row" holds only the foreign-key columns and the watched row's key values
# ({"author_id": 7}) and whose "old" is null: ids, never the child rows themselves, so
# renaming a parent costs one small event per referencing channel however many children it has.
# Schema and table names are data here (JSON values), never spliced into SQL.
CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION pgevents_notify() RETURNS trigger
LANGUAGE plpgsql AS $pgevents$
DECLARE
    cfg jsonb := TG_ARGV[0]::jsonb;
    new_row jsonb;
    old_row jsonb;
    cols text[];
    msg text;
    ref jsonb;
    ref_row jsonb;
    full_row jsonb;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
        full_row := new_row;
        IF cfg ? 'include' THEN
            cols := ARRAY(SELECT jsonb_array_elements_text(cfg->'include'));
            IF new_row IS NOT NULL THEN
                new_row := coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(new_row)
                                     WHERE key = ANY(cols)), '{{}}'::jsonb);
            END IF;
            IF old_row IS NOT NULL THEN
                old_row := coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(old_row)
                                     WHERE key = ANY(cols)), '{{}}'::jsonb);
            END IF;
        END IF;
        IF cfg ? 'exclude' THEN
            cols := ARRAY(SELECT jsonb_array_elements_text(cfg->'exclude'));
            new_row := new_row - cols;
            old_row := old_row - cols;
        END IF;
    END IF;
    IF coalesce((cfg->>'durable')::boolean, true) THEN
        INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row", old)
        VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, old_row);
        IF coalesce((cfg->>'notify')::boolean, true) THEN
            -- A wake-up only: identical notifications collapse to one per transaction.
            PERFORM pg_notify('{INTERNAL_CHANNEL}', '');
        END IF;
    ELSE
        msg := jsonb_build_object('channel', cfg->>'channel', 'op', TG_OP, 'schema', TG_TABLE_SCHEMA,
                                  'table', TG_TABLE_NAME, 'row', new_row, 'old', old_row,
                                  'at', clock_timestamp())::text;
        IF octet_length(msg) >= {NOTIFY_LIMIT} THEN
            msg := jsonb_build_object('channel', cfg->>'channel', 'op', TG_OP, 'schema', TG_TABLE_SCHEMA,
                                      'table', TG_TABLE_NAME, 'row', NULL, 'old', NULL,
                                      'at', clock_timestamp(), 'truncated', true)::text;
        END IF;
        PERFORM pg_notify('{INTERNAL_CHANNEL}', msg);
    END IF;
    IF TG_OP = 'UPDATE' AND jsonb_typeof(cfg->'referencing') = 'array' THEN
        FOR ref IN SELECT jsonb_array_elements(cfg->'referencing') LOOP
            SELECT jsonb_object_agg(c.col, full_row->k.key)
              INTO ref_row
              FROM jsonb_array_elements_text(ref->'columns') WITH ORDINALITY AS c(col, n)
              JOIN jsonb_array_elements_text(ref->'keys') WITH ORDINALITY AS k(key, n) USING (n);
            IF coalesce((cfg->>'durable')::boolean, true) THEN
                INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row", old)
                VALUES (ref->>'channel', 'UPDATE', ref->>'schema', ref->>'table', ref_row, NULL);
            ELSE
                PERFORM pg_notify('{INTERNAL_CHANNEL}', jsonb_build_object(
                    'channel', ref->>'channel', 'op', 'UPDATE', 'schema', ref->>'schema',
                    'table', ref->>'table', 'row', ref_row, 'old', NULL, 'at', clock_timestamp())::text);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$pgevents$;
COMMENT ON FUNCTION pgevents_notify() IS 'pgevents v{SCHEMA_VERSION}';
"""

DROP_FUNCTION = "DROP FUNCTION IF EXISTS pgevents_notify() CASCADE;"

# The contract's envelope, encoded by PostgreSQL: one definition shared by the sequencer
# (live events) and replay.
CREATE_FRAME = """
CREATE OR REPLACE FUNCTION pgevents_frame(e pgevents_event) RETURNS text
LANGUAGE sql STABLE AS $pgevents$
    SELECT jsonb_build_object(
        'type', 'event', 'channel', e.channel, 'id', e.id, 'op', e.op,
        'schema', e.schema_name, 'table', e.table_name, 'row', e."row", 'old', e.old,
        'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
$pgevents$;
"""

# The sequencer: positions committed, unpositioned events in the order it observes them.
# The row lock on the 'assigned' cursor serialises sequencers, so ids never go backwards even
# if two listeners ever ran at once. Each statement of a VOLATILE function takes a fresh
# snapshot, so a second sequencer that waited sees the first one's work.
CREATE_ASSIGN = """
CREATE OR REPLACE FUNCTION pgevents_assign(batch integer, published bigint)
RETURNS TABLE (event_id bigint, prev_event_id bigint, event_channel text, event_frame text)
LANGUAGE plpgsql AS $pgevents$
DECLARE
    last_id bigint;
    n bigint;
BEGIN
    UPDATE pgevents_cursor SET value = greatest(value, published) WHERE name = 'published';
    SELECT value INTO last_id FROM pgevents_cursor WHERE name = 'assigned' FOR UPDATE;
    RETURN QUERY
    WITH pending AS (
        SELECT s.seq, s.channel, last_id + row_number() OVER (ORDER BY s.seq) AS new_id
        FROM (SELECT p.seq, p.channel FROM pgevents_event p
              WHERE p.id IS NULL ORDER BY p.seq LIMIT batch) s
    ), linked AS (
        SELECT k.seq, k.new_id,
               coalesce(lag(k.new_id) OVER (PARTITION BY k.channel ORDER BY k.new_id),
                        (SELECT max(x.id) FROM pgevents_event x
                         WHERE x.channel = k.channel AND x.id IS NOT NULL)) AS prev
        FROM pending k
    ), done AS (
        UPDATE pgevents_event e SET id = l.new_id, prev_id = l.prev
        FROM linked l WHERE e.seq = l.seq
        RETURNING e.*
    )
    SELECT d.id, d.prev_id, d.channel, pgevents_frame(d::pgevents_event) FROM done d ORDER BY d.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE pgevents_cursor SET value = last_id + n WHERE name = 'assigned';
    END IF;
END
$pgevents$;
"""

INSTALL = CREATE_LOG + CREATE_FUNCTION + CREATE_FRAME + CREATE_ASSIGN
UNINSTALL = DROP_FUNCTION + DROP_LOG


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


def test_event(spec: TriggerSpec) -> list[sql.Composed]:
    """Statements that send one test event on the spec's channel the way its trigger would:
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


# Which server processes hold how many subscriptions per channel: each process's hub writes
# its counts here (on change, and as a heartbeat) so `pgevents_status` can show them from
# any host. A table rather than Redis: it works with every channel layer, including the
# in-memory one, and the status tools already read this database.
CREATE_PRESENCE = """
CREATE TABLE IF NOT EXISTS pgevents_presence (
    process text PRIMARY KEY,
    counts jsonb NOT NULL,
    seen timestamptz NOT NULL DEFAULT now()
);
"""
DROP_PRESENCE = "DROP TABLE IF EXISTS pgevents_presence;"
