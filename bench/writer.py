"""The writer: one row per transaction, paced or flat out, recording each commit's ack time.

Latency is measured from the moment the writer's ``COMMIT`` returns (the earliest time any
observer could know the change exists) to the moment a client reads the frame. Writer and
clients share the machine's clock (``time.time()``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql

PAYLOAD = "x" * 200


def write(
    url: str,
    table: str,
    count: int,
    rate: float | None,
    start_seqno: int = 0,
    payload: str = PAYLOAD,
    offsets: Sequence[float] | None = None,
) -> list[float]:
    """Insert ``count`` rows into ``table`` at ``rate`` per second (None: as fast as possible),
    or each row at its time in ``offsets`` (seconds from the start; see :func:`burst_offsets`).

    Pacing is open-loop (a schedule, not a sleep after each insert), so a slow commit does not
    lower the offered load. Returns the commit-ack time of each row, by ``seqno - start_seqno``.
    """
    if offsets is not None:
        count = len(offsets)
    statement = pgsql.SQL("INSERT INTO {} (seqno, payload) VALUES (%s, %s)").format(pgsql.Identifier(table))
    acks: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        t0 = time.monotonic()
        for i in range(count):
            if offsets is not None or rate:
                delay = t0 + (offsets[i] if offsets is not None else i / rate) - time.monotonic()  # type: ignore[operator]
                if delay > 0:
                    time.sleep(delay)
            conn.execute(statement, (start_seqno + i, payload), prepare=True)
            acks.append(time.time())
    return acks


def burst_offsets(rate: float, seconds: float, at: float, factor: float = 10, length: float = 2) -> list[float]:
    """A steady ``rate`` for ``seconds``, with ``factor`` times the rate from ``at`` for
    ``length`` seconds: each row's time from the start."""
    out: list[float] = []
    t = 0.0
    while t < seconds:
        out.append(t)
        t += 1 / (rate * factor) if at <= t < at + length else 1 / rate
    return out


def listen_floor(url: str, count: int, timeout: float, ready: object, out: object) -> None:
    """The floor: a bare psycopg LISTEN client on ``bench_floor`` (run in its own process).

    Sends ``(seqnos, receipt times)`` through ``out`` once ``count`` notifications arrived or
    ``timeout`` passed. ``ready`` is set once LISTEN is in place.
    """
    import json

    seqnos: list[int] = []
    times: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("LISTEN bench_floor")
        ready.set()  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        for note in conn.notifies(timeout=timeout):
            now = time.time()
            seqnos.append(json.loads(note.payload)["seqno"])
            times.append(now)
            if len(seqnos) >= count or time.monotonic() > deadline:
                break
    out.send((seqnos, times))  # type: ignore[attr-defined]


# -- the writer's work, part by part ---------------------------------------------------------
#: Scratch tables of the ``writer-parts`` scenario live in a schema of their own.
PARTS_SCHEMA = "bench_parts"
_LOG_COLUMNS = """
    seq bigint{seq_default},
    id bigint,
    prev_id bigint,
    channel text NOT NULL,
    op text,
    schema_name text,
    table_name text,
    "row" jsonb,
    old jsonb,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
"""
#: The row JSON exactly as ``pgevents_notify()`` builds it for a watch of the v3 kind.
_ROW_JSON = """
    new_row := to_jsonb(NEW);
    cols := TG_ARGV[2]::text[];
    new_row := new_row - cols;
    unsent := new_row - TG_ARGV[1]::text[];
    IF unsent <> '{}'::jsonb THEN
        cols := ARRAY(SELECT jsonb_object_keys(unsent));
        new_row := new_row - cols;
    END IF;
"""
_INSERT = """
    INSERT INTO bench_parts.{log} (channel, op, schema_name, table_name, "row", old)
    VALUES (cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, new_row, NULL);
"""
#: The statement trigger's one query: the rows' JSON straight from the transition table.
_STATEMENT_INSERT = """
    INSERT INTO bench_parts.{log} (channel, op, schema_name, table_name, "row")
    SELECT cfg->>'channel', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(n) FROM new_rows n;
"""
_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_parts.{name}() RETURNS trigger LANGUAGE plpgsql{options} AS $$
DECLARE
    cfg jsonb := TG_ARGV[0]::jsonb;
    new_row jsonb;
    cols text[];
    unsent jsonb;
BEGIN
{body}
    RETURN NULL;
END $$
"""
_DEFINER = " SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
#: Index definitions of the log as migration 0001 made it (the seq primary key and the id
#: unique constraint are indexes too), added one at a time.
LOG_INDEXES_0001 = (
    ("seq primary key", "ALTER TABLE {t} ADD PRIMARY KEY (seq)"),
    ("id unique (NULLs indexed)", "ALTER TABLE {t} ADD UNIQUE (id)"),
    ("pending (seq) WHERE id IS NULL", "CREATE INDEX ON {t} (seq) WHERE id IS NULL"),
    ("(channel, id) WHERE id IS NOT NULL", "CREATE INDEX ON {t} (channel, id) WHERE id IS NOT NULL"),
)

#: The indexes migration 0008 leaves: a pending row is in the pending index only.
LOG_INDEXES_0008 = (
    "CREATE INDEX ON {t} (seq) WHERE id IS NULL",
    "CREATE UNIQUE INDEX ON {t} (id) WHERE id IS NOT NULL",
    "CREATE INDEX ON {t} (channel, id) WHERE id IS NOT NULL",
)


@dataclass(frozen=True)
class Part:
    """One step of the write path: a table whose trigger does that much of the work."""

    table: str
    label: str
    #: Statements creating the scratch log this step inserts into ({t}: its name), if any.
    log: tuple[str, ...] = ()
    definer: bool = True
    row_json: bool = True
    #: A statement trigger logging the statement's rows in one ``INSERT … SELECT`` from its
    #: transition table, as the real watch logs an INSERT.
    statement: bool = False


def writer_parts() -> list[Part]:
    """The write path built up a part at a time: each step adds one thing to the previous."""
    steps = [
        Part("bench_parts.w_empty", "trigger that does nothing", definer=False, row_json=False),
        Part("bench_parts.w_definer", "+ SECURITY DEFINER, pinned search_path", row_json=False),
        Part("bench_parts.w_json", "+ builds the row JSON"),
        Part(
            "bench_parts.w_heap",
            "+ inserts it into a log without indexes or sequence",
            log=(f"CREATE TABLE {{t}} ({_LOG_COLUMNS.format(seq_default='')})",),
        ),
        Part(
            "bench_parts.w_seq",
            "+ seq from a sequence",
            log=(f"CREATE TABLE {{t}} ({_LOG_COLUMNS.format(seq_default=' GENERATED BY DEFAULT AS IDENTITY')})",),
        ),
    ]
    seq = steps[-1].log
    for n, (label, ddl) in enumerate(LOG_INDEXES_0001):
        steps.append(Part(f"bench_parts.w_idx{n}", f"+ index {label}", log=(*steps[-1].log, ddl)))
    steps.append(
        Part("bench_parts.w_lean", "the same, with the indexes of migration 0008", log=(*seq, *LOG_INDEXES_0008))
    )
    steps.append(
        Part(
            "bench_parts.w_statement",
            "the same log, written by a statement trigger (one INSERT … SELECT, nothing else)",
            log=(*seq, *LOG_INDEXES_0008),
            row_json=False,
            statement=True,
        )
    )
    return steps


def prepare_parts(url: str) -> list[Part]:
    """(Re)create the scratch schema: per step a watched-like table and its trigger."""
    steps = writer_parts()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PARTS_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {PARTS_SCHEMA}")
        for step in steps:
            name = step.table.partition(".")[2]
            body = _ROW_JSON if step.row_json else ""
            if step.log:
                log = f"log_{name}"
                for ddl in step.log:
                    conn.execute(ddl.format(t=f"{PARTS_SCHEMA}.{log}"))
                body += (_STATEMENT_INSERT if step.statement else _INSERT).format(log=log)
            conn.execute(
                _FUNCTION.format(name=f"t_{name}", options=_DEFINER if step.definer else "", body=body or "    NULL;")
            )
            conn.execute(f"CREATE TABLE {step.table} (pk bigserial PRIMARY KEY, seqno bigint NOT NULL, payload text)")
            each = "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT" if step.statement else "FOR EACH ROW"
            conn.execute(
                f"CREATE TRIGGER t AFTER INSERT ON {step.table} {each} EXECUTE FUNCTION "
                f"{PARTS_SCHEMA}.t_{name}('{{\"channel\": \"parts\"}}', '{{pk,seqno,payload}}', '{{}}')"
            )
    return steps


def drop_parts(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PARTS_SCHEMA} CASCADE")
