"""The writer: one row per transaction, paced or flat out, recording each commit's ack time.

Latency is measured from the moment the writer's ``COMMIT`` returns (the earliest time any
observer could know the change exists) to the moment a client reads the frame. Writer and
clients share the machine's clock (``time.time()``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
