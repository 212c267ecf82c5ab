"""The benchmark's own database: created (or reused), migrated, and given its tables.

- ``bench_events`` — watched by pgevents (durable, channel ``bench``);
- ``bench_quiet`` — watched with ``notify=False`` (channel ``bench_quiet``): no NOTIFY in
  the writer's commit, the listener finds events by polling;
- ``bench_transient`` — watched with ``durable=False`` (channel ``bench_transient``): the
  event goes to an unlogged table the listener drains, with a wake-up NOTIFY;
- ``bench_floor`` — a bare trigger that ``pg_notify``s the row to ``bench_floor`` (the floor);
- ``bench_peer`` — the same bare trigger to ``bench_peer``: what another server driven in the
  same run (``--peer``, e.g. pg_eventserv) forwards to its clients;
- ``bench_plain`` — no trigger at all (the writer-cost baseline);
- with ``compare_v2``, ``bench_v2_events`` and ``bench_v2_transient``: the same watches run
  by the previous trigger function (schema v2, invoker's rights, non-durable events in the
  NOTIFY payload), migration 0002's frozen text created in schema ``bench_v2``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from pgevents.core.sql import TriggerSpec
from pgevents.migrations._frozen import read

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("bench_events", "bench_quiet", "bench_transient", "bench_floor", "bench_peer", "bench_plain")
PEER_TABLE = PEER_CHANNEL = "bench_peer"
COLUMNS = ("pk", "seqno", "payload")
#: What the watches fire on (only the bulk scenario updates rows).
WATCHED = ("INSERT", "UPDATE")

BARE_TRIGGER = """
CREATE OR REPLACE FUNCTION {name}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{name}', row_to_json(NEW)::text);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS {name}_notify ON {name};
CREATE TRIGGER {name}_notify AFTER INSERT ON {name} FOR EACH ROW EXECUTE FUNCTION {name}_notify();
"""
#: Tables whose trigger is a bare ``pg_notify(row_to_json(NEW))`` to a channel of their name.
BARE_TABLES = ("bench_floor", PEER_TABLE)


def admin_url(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    name, _, query = name.partition("?")
    return base + "/postgres" + ("?" + query if query else ""), name


def create(url: str) -> None:
    """A fresh database at ``url`` (dropped first if it exists)."""
    admin, name = admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))


def drop(url: str) -> None:
    admin, name = admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


def migrate(url: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": url},
        check=True,
    )


V2_TABLES = ("bench_v2_events", "bench_v2_transient")


def _v2_function() -> str:
    return read("0002_notify_referencing").replace("FUNCTION pgevents_notify()", "FUNCTION bench_v2.pgevents_notify()")


def prepare(url: str, compare_v2: bool = False) -> None:
    """(Re)create the tables and their triggers; empty the event log."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in (*TABLES, *(V2_TABLES if compare_v2 else ())):
            conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(table)))
            conn.execute(
                pgsql.SQL("CREATE TABLE {} (pk bigserial PRIMARY KEY, seqno bigint NOT NULL, payload text)").format(
                    pgsql.Identifier(table)
                )
            )
        for spec in (
            TriggerSpec(table="bench_events", channel="bench", events=WATCHED, columns=COLUMNS),
            TriggerSpec(table="bench_quiet", channel="bench_quiet", events=WATCHED, columns=COLUMNS, notify=False),
            TriggerSpec(
                table="bench_transient", channel="bench_transient", events=WATCHED, columns=COLUMNS, durable=False
            ),
        ):
            for statement in spec.create_statements():
                conn.execute(statement)
        for name in BARE_TABLES:
            conn.execute(BARE_TRIGGER.format(name=name))
        if compare_v2:
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench_v2")
            conn.execute(_v2_function())
            for table, durable in zip(V2_TABLES, ("true", "false"), strict=True):
                config = pgsql.Literal(f'{{"channel": "bench_v2", "durable": {durable}, "notify": true}}')
                conn.execute(
                    pgsql.SQL("CREATE TRIGGER v2 AFTER INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}({})").format(
                        pgsql.Identifier(table), pgsql.Identifier("bench_v2", "pgevents_notify"), config
                    )
                )
        conn.execute("TRUNCATE pgevents_event, pgevents_transient")
        conn.execute("UPDATE pgevents_cursor SET value = 0")
