"""The trigger function's cost per statement, in one session: ``python -m bench.triggercost URL [URL …]``.

pgbench's inserts/s mix the trigger with the commit, the WAL flush and the other writers;
this measures what the trigger adds to a statement's own time. For each database given
(each migrated by the code under test, e.g. A's and B's checkouts), one session runs a
``DO`` block of one-row ``INSERT``s into a table, then one-row ``UPDATE``s of those rows,
in one transaction that is rolled back: no trigger (``bench_plain``), a durable watch, a
non-durable one and a durable one with ``notify=False``. No listener runs, so the wake-up
flags read 0 and durable and non-durable statements take the wake-up path. Databases and
tables are taken in a new random order each round, so whatever else the machine does
weighs on each alike. Reported: µs per statement, median (range) of the rounds. Run it
under the benchmark lock.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

import psycopg

from . import database
from .report import sides_table

TABLES = (
    ("bench_plain", "no trigger"),
    ("bench_events", "durable"),
    ("bench_transient", "non-durable"),
    ("bench_quiet", "durable, notify=False"),
)
#: Where each watched table's events go (each block is checked to have logged one per row).
LOGGED_IN = {"bench_events": "pgevents_event", "bench_transient": "pgevents_transient", "bench_quiet": "pgevents_event"}
#: The blocks of one-row statements ({n} of them into {table}).
INSERTS = """
DO $$
BEGIN
    FOR i IN 1..{n} LOOP
        INSERT INTO {table} (seqno, payload) VALUES (i, repeat('x', 200));
    END LOOP;
END $$
"""
UPDATES = """
DO $$
DECLARE
    first bigint := (SELECT min(pk) FROM {table});
BEGIN
    FOR i IN 0..{n} - 1 LOOP
        UPDATE {table} SET seqno = -seqno WHERE pk = first + i;
    END LOOP;
END $$
"""


def _timed(conn: psycopg.Connection, statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement)
    return time.perf_counter() - started


def _check(conn: psycopg.Connection, table: str, expected: int) -> None:
    """The blocks logged one event per statement (seen inside their own transaction)."""
    if table not in LOGGED_IN:
        return
    row = conn.execute(f"SELECT count(*) FROM {LOGGED_IN[table]} WHERE table_name = %s", (table,)).fetchone()
    if row is None or row[0] != expected:
        raise RuntimeError(f"{table}: {row[0] if row else None} events logged, expected {expected}")


def run(urls: list[str], statements: int, rounds: int) -> list[tuple[str, list[str]]]:
    """Rows of (what, median (range) µs per statement, per database)."""
    for url in urls:
        database.prepare(url)  # the watched tables, an empty log
    conns = [psycopg.connect(url) for url in urls]
    times: dict[tuple[int, str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for i in random.sample(range(len(urls)), len(urls)):
                for table, _ in random.sample(TABLES, len(TABLES)):
                    conns[i].execute(f"TRUNCATE {table}")
                    conns[i].commit()
                    for what, template in (("INSERT", INSERTS), ("UPDATE", UPDATES)):
                        took = _timed(conns[i], template.format(n=statements, table=table))
                        times.setdefault((i, table, what), []).append(took / statements * 1e6)
                    _check(conns[i], table, 2 * statements if table in LOGGED_IN else 0)
                    conns[i].rollback()
    finally:
        for conn in conns:
            conn.close()
    table_rows = []
    for what in ("INSERT", "UPDATE"):
        for table, label in TABLES:
            cells = []
            for i in range(len(urls)):
                runs = sorted(times[(i, table, what)])
                cells.append(f"{statistics.median(runs):.1f} ({runs[0]:.1f}-{runs[-1]:.1f})")
            table_rows.append((f"one-row {what}, {label}", cells))
    return table_rows


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.triggercost", description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", metavar="DATABASE_URL", help="migrated databases (A, B, …)")
    parser.add_argument("--statements", type=int, default=20_000, help="statements per block (default 20,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    table = run(args.urls, args.statements, args.rounds)
    print(sides_table("µs per statement, median (range)", len(args.urls), table))


if __name__ == "__main__":
    main()
