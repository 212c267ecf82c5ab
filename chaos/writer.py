"""The writer: short transactions of several shapes from a few connections, and one
long-running transaction at a time held open across the others' commits.

Shapes (weights in ``MIX``): one small row; many rows (on one or both tables); UPDATEs of
rows this connection inserted earlier; rows over NOTIFY's 8000-byte limit. The long
transaction inserts a row, waits while the others commit, inserts another and commits: it
started first and commits last.

A failed transaction (PostgreSQL restarting) may or may not have committed; the writer does
not guess and does not retry under the same key. What counts is what the tables hold at the
end (``schema.truth``). The writer only records when it sent each COMMIT (which clients are
owed the change: those subscribed before) and when it saw it acknowledged (or, for an
unknown outcome, the failure), which is what delays and gap-closing times are measured from.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import psycopg
from psycopg import sql as pgsql

from .plan import CHANNELS, Config
from .schema import Change

MIX = {"single": 45, "multi": 20, "update": 25, "large": 10}
INSERT = "INSERT INTO {} (k, rev, size, payload) SELECT k, 0, s, chaos_payload(k, 0, s) FROM unnest(%s::text[], %s::int[]) AS t(k, s)"
UPDATE = "UPDATE {} SET rev = rev + 1, payload = chaos_payload(k, rev + 1, size) WHERE k = ANY(%s) RETURNING k, rev"


class Writer:
    def __init__(self, url: str, cfg: Config) -> None:
        self.url = url
        self.cfg = cfg
        #: Change → when its transaction's COMMIT was sent: every client subscribed before
        #: that moment is owed the change.
        self.sent_at: dict[Change, float] = {}
        #: Change → when its commit was acknowledged.
        self.committed_at: dict[Change, float] = {}
        #: Change → when its transaction failed with an unknown outcome.
        self.unknown_at: dict[Change, float] = {}
        self.transactions: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    async def run(self, until: float) -> None:
        tasks = [self._short(f"w{i}", until) for i in range(self.cfg.writers)]
        await asyncio.gather(*tasks, self._long("L", until))

    # -- the two kinds of writer -----------------------------------------------------------
    async def _short(self, name: str, until: float) -> None:
        rng = random.Random(f"{self.cfg.seed}:writer:{name}")
        per_second = self.cfg.rate / self.cfg.writers
        mine: dict[str, list[str]] = {table: [] for table in CHANNELS}
        keys = (f"{name}.{n}" for n in range(10**9))
        conn: psycopg.AsyncConnection[Any] | None = None
        next_at = time.monotonic()
        while True:
            next_at = max(next_at + rng.expovariate(per_second), time.monotonic() - 1.0)
            if next_at >= until:
                break
            await asyncio.sleep(next_at - time.monotonic())
            shape = rng.choices(list(MIX), weights=list(MIX.values()))[0]
            conn = await self._attempt(conn, shape, lambda c, shape=shape: self._shape(c, shape, rng, keys, mine))
        if conn is not None:
            await conn.close()

    async def _long(self, name: str, until: float) -> None:
        rng = random.Random(f"{self.cfg.seed}:writer:{name}")
        keys = (f"{name}.{n}" for n in range(10**9))
        conn: psycopg.AsyncConnection[Any] | None = None

        async def hold(c: psycopg.AsyncConnection[Any]) -> list[Change]:
            table = rng.choice(CHANNELS)
            changes = await _insert(c, table, [(next(keys), rng.randint(10, 400))])
            await asyncio.sleep(max(0.0, min(rng.uniform(1.0, 5.0), until - time.monotonic())))
            return changes + await _insert(c, rng.choice(CHANNELS), [(next(keys), rng.randint(10, 400))])

        while time.monotonic() < until:
            conn = await self._attempt(conn, "long", hold)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
        if conn is not None:
            await conn.close()

    async def _attempt(self, conn: psycopg.AsyncConnection[Any] | None, shape: str, body: Any) -> Any:
        """One transaction; returns the connection to use next (None after a failure)."""
        changes: list[Change] = []
        try:
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
            async with conn.transaction():
                changes = await body(conn)
                sent = time.monotonic()
                for change in changes:
                    self.sent_at[change] = sent
        except psycopg.Error:
            now = time.monotonic()
            for change in changes:
                self.unknown_at[change] = now
            self.failures[shape] += 1
            if conn is not None:
                await conn.close()
            await asyncio.sleep(0.2)
            return None
        now = time.monotonic()
        for change in changes:
            self.committed_at[change] = now
        self.transactions[shape] += 1
        return conn

    async def _shape(
        self,
        conn: psycopg.AsyncConnection[Any],
        shape: str,
        rng: random.Random,
        keys: Any,
        mine: dict[str, list[str]],
    ) -> list[Change]:
        table = rng.choice(CHANNELS)
        if shape == "update" and len(mine[table]) >= 1:
            chosen = sorted(rng.sample(mine[table], min(len(mine[table]), rng.randint(1, 4))))
            cur = await conn.execute(pgsql.SQL(UPDATE).format(pgsql.Identifier(table)), (chosen,))
            return [(table, k, rev) for k, rev in await cur.fetchall()]
        if shape == "multi":
            rows = [(next(keys), rng.randint(10, 400)) for _ in range(rng.randint(2, 30))]
            if rng.random() < 0.5:  # one transaction, both channels
                half = len(rows) // 2
                changes = await _insert(conn, CHANNELS[0], rows[:half])
                changes += await _insert(conn, CHANNELS[1], rows[half:])
            else:
                changes = await _insert(conn, table, rows)
        elif shape == "large":
            changes = await _insert(
                conn, table, [(next(keys), rng.randint(9_000, 64_000)) for _ in range(rng.randint(1, 2))]
            )
        else:
            changes = await _insert(conn, table, [(next(keys), rng.randint(10, 400))])
        for ch, k, _ in changes:
            mine[ch].append(k)  # a key whose insert did not commit makes a later UPDATE match nothing
        return changes


async def _insert(conn: psycopg.AsyncConnection[Any], table: str, rows: list[tuple[str, int]]) -> list[Change]:
    if not rows:
        return []
    await conn.execute(pgsql.SQL(INSERT).format(pgsql.Identifier(table)), ([k for k, _ in rows], [s for _, s in rows]))
    return [(table, k, 0) for k, _ in rows]
