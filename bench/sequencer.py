"""The sequencer call alone, as the listener makes it: ``python -m bench.sequencer URL [URL …]``.

End-to-end runs vary from one to the next by more than a tenth of a millisecond, which is
what a change to ``pgevents_assign`` moves. This times only the call: for each database
given (each migrated by the code under test, e.g. A's and B's checkouts), a writer inserts
into ``bench_events`` (the watched table), the probe sleeps a pause, then calls the
sequencer and times the round trip. The databases are called in turn, in random order, call
by call, so whatever else the machine does weighs on each alike. Reported: one event with
no pause and after 5 ms and 20 ms pauses (the machine's wake-up multiplies the server's
work), batches of 500, and a call that finds nothing. Run it under the benchmark lock.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

import psycopg

from pgevents.store import log

from . import database
from .report import sides_table

PAUSES = (0.0, 0.005, 0.02)


class Side:
    def __init__(self, url: str) -> None:
        self.url = url
        self.listener = psycopg.connect(url, autocommit=True)
        self.writer = psycopg.connect(url, autocommit=True)
        self.published = 0

    def call(self, rows: int, pause: float) -> float:
        if rows:
            self.writer.execute(
                "INSERT INTO bench_events (seqno, payload) SELECT g, repeat('x', 200) FROM generate_series(1, %s) g",
                (rows,),
            )
        time.sleep(pause)
        started = time.perf_counter()
        found = self.listener.execute(log.ASSIGN, (500, self.published)).fetchall()
        took = (time.perf_counter() - started) * 1000
        if len(found) != rows:
            raise RuntimeError(f"{self.url}: positioned {len(found)} events, expected {rows}")
        if found:
            self.published = found[-1][0]
        return took


def _round(sides: list[Side], calls: int, rows: int, pause: float) -> list[list[float]]:
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(calls):
        for i in random.sample(range(len(sides)), len(sides)):
            times[i].append(sides[i].call(rows, pause))
    return times


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.3f} ({ordered[int(len(ordered) * 0.9)]:.3f})"


def run(urls: list[str], calls: int, batches: int, vacuum: bool) -> list[tuple[str, list[str]]]:
    """Rows of (what, p50 (p90) ms per database)."""
    for url in urls:
        database.prepare(url)  # the watched tables, an empty log
        if vacuum:  # what autovacuum leaves on a drained log: statistics that say nothing is pending
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE pgevents_event")
    sides = [Side(url) for url in urls]
    _round(sides, min(calls, 20), 1, 0.0)  # each session's plans
    table: list[tuple[str, list[str]]] = []
    for pause in PAUSES:
        what = f"one event, {pause * 1000:.0f} ms pause" if pause else "one event, back to back"
        table.append((what, [_summary(t) for t in _round(sides, calls, 1, pause)]))
    table.append(("500 events", [_summary(t) for t in _round(sides, batches, 500, 0.0)]))
    table.append(("a call that finds nothing", [_summary(t) for t in _round(sides, calls, 0, 0.0)]))
    for side in sides:
        side.listener.close()
        side.writer.close()
    return table


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sequencer", description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", metavar="DATABASE_URL", help="migrated databases (A, B, …)")
    parser.add_argument("--calls", type=int, default=300, help="calls per figure (default 300)")
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 (default 20)")
    parser.add_argument("--vacuum", action="store_true", help="VACUUM ANALYZE the empty log first")
    args = parser.parse_args(argv)
    table = run(args.urls, args.calls, args.batches, args.vacuum)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(sides_table("p50 (p90) ms", len(args.urls), table))


if __name__ == "__main__":
    main()
