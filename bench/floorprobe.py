"""The floor of a durable positioning step: ``python -m bench.floorprobe --database-url URL``.

pgevents promises that an event is positioned (given its id) by a durable commit before
anyone may see it, and that it crosses Redis to reach the server. Its latency from a
writer's commit to a client is measured end to end (``scripts/bench``) and taken apart
(``bench.steps``), but neither says how low *any* design keeping that contract could go on
the machine at hand. This probe builds the least such pipelines can do, with no pgevents
code on the path, and times them under the same load, in the same run:

- **floor**: a bare ``pg_notify(channel, row_to_json(NEW)::text)`` row trigger, received by
  a psycopg ``LISTEN`` connection in another process — what PostgreSQL offers, unpositioned;
- **durable**: a statement trigger inserts the rows into a scratch log (``seq bigserial``,
  ``id bigint``, ``payload jsonb``, a partial index on ``seq WHERE id IS NULL``) and
  ``NOTIFY``s a wake-up; a positioner (one asyncio psycopg connection, autocommit,
  ``synchronous_commit`` on) answers a wake-up, and keeps calling while calls find events,
  with one ``UPDATE … SET id = nextval(…) … RETURNING`` — a durable commit per call — and
  hands the rows to a receiver task in its own process (which reads them once the
  positioner has sent its next call and waits: the cost of sending one statement);
- **durable + Redis**: the same, the positioner ``PUBLISH``ing each call's rows as one
  message (redis-py asyncio), a receiver process ``SUBSCRIBE``d;
- **durable + Redis, synchronous_commit off**: the same with the positioner's commits not
  waiting for the WAL flush. Not a valid design (a crash could lose ids already seen); it
  shows what the flush costs.

A writer process commits one-row ``INSERT``s (``bench.writer.write``: its ``time.time()``
after each ``COMMIT`` returns), flat out and then ~10 a second; each receiver notes
``time.time()`` when it reads an event: latency is the difference, on one clock, as in
``scripts/bench``. Pipelines are taken in a new random order each round, so whatever else
the machine does weighs on each alike. Each run checks every event arrived exactly once.
Run it under the benchmark lock: it measures latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psycopg
import redis
import redis.asyncio

from .report import Latency, sides_table
from .writer import write

#: Scratch tables, in the public schema (the writer names its table as one identifier).
NOTIFY_TABLE = "bench_fp_notify"
LOGGED_TABLE = "bench_fp_logged"
LOG = "bench_fp_log"
IDS = "bench_fp_id"
#: The floor trigger's channel, and the positioner's wake-up.
FLOOR_CHANNEL = "bench_fp_floor"
WAKE = "bench_fp_wake"
STOP = "stop"

SETUP = (
    f"DROP TABLE IF EXISTS {NOTIFY_TABLE}, {LOGGED_TABLE}, {LOG}",
    f"DROP SEQUENCE IF EXISTS {IDS}",
    f"CREATE TABLE {NOTIFY_TABLE} (pk bigserial PRIMARY KEY, seqno bigint NOT NULL, payload text)",
    f"CREATE TABLE {LOGGED_TABLE} (pk bigserial PRIMARY KEY, seqno bigint NOT NULL, payload text)",
    f"CREATE TABLE {LOG} (seq bigserial PRIMARY KEY, id bigint, payload jsonb NOT NULL)",
    f"CREATE INDEX ON {LOG} (seq) WHERE id IS NULL",
    f"CREATE SEQUENCE {IDS}",
    f"""CREATE OR REPLACE FUNCTION bench_fp_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{FLOOR_CHANNEL}', row_to_json(NEW)::text);
        RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION bench_fp_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {LOG} (payload) SELECT to_jsonb(n) FROM new_rows n;
        PERFORM pg_notify('{WAKE}', '');
        RETURN NULL;
    END $$""",
    f"CREATE TRIGGER t AFTER INSERT ON {NOTIFY_TABLE} FOR EACH ROW EXECUTE FUNCTION bench_fp_notify()",
    f"CREATE TRIGGER t AFTER INSERT ON {LOGGED_TABLE} REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION bench_fp_log()",
)
TEARDOWN = (
    f"DROP TABLE IF EXISTS {NOTIFY_TABLE}, {LOGGED_TABLE}, {LOG}",
    f"DROP SEQUENCE IF EXISTS {IDS}",
    "DROP FUNCTION IF EXISTS bench_fp_notify(), bench_fp_log()",
)
#: The positioning step: every pending row gets its id, in one durable commit (autocommit).
#: One positioner runs, so ids increase in the order of its commits.
POSITION = f"""
UPDATE {LOG} SET id = nextval('{IDS}')
WHERE seq IN (SELECT seq FROM {LOG} WHERE id IS NULL ORDER BY seq FOR UPDATE)
RETURNING id, (payload->>'seqno')::bigint, payload::text
"""

FLOOR = "floor: pg_notify → LISTEN"
DURABLE = "durable positioning, in-process"
REDIS = "durable positioning + Redis"
ASYNC = "+ Redis, synchronous_commit off (not valid)"
PIPELINES = (FLOOR, DURABLE, REDIS, ASYNC)


# -- receivers in processes of their own ----------------------------------------------------
def receive_notify(url: str, ready: Any, out: Connection) -> None:
    """The floor's receiver: a bare ``LISTEN``; sends back (seqnos, receipt times)."""
    seqnos: list[int] = []
    times: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {FLOOR_CHANNEL}")
        ready.set()
        for note in conn.notifies():
            now = time.time()
            if note.payload == STOP:
                break
            seqnos.append(json.loads(note.payload)["seqno"])
            times.append(now)
    out.send((seqnos, times))


def receive_redis(redis_url: str, channel: str, ready: Any, out: Connection) -> None:
    """The Redis receiver: ``SUBSCRIBE``d; each message is one positioning call's events."""
    seqnos: list[int] = []
    times: list[float] = []
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=10)  # the subscription's confirmation
    ready.set()
    for message in pubsub.listen():
        now = time.time()
        if message["type"] != "message":
            continue
        if message["data"] == STOP.encode():
            break
        for event in json.loads(message["data"]):
            seqnos.append(event["row"]["seqno"])
            times.append(now)
    pubsub.close()
    client.close()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    out.send((seqnos, times))


# -- the positioner -------------------------------------------------------------------------
Rows = list[tuple[int, int, str]]


@dataclass
class Positioner:
    """One connection positioning pending rows and handing each call's rows to ``deliver``."""

    url: str
    deliver: Callable[[Rows], Awaitable[None]]
    synchronous_commit: bool = True
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: events per call that found some, and the calls that found none
    batches: list[int] = field(default_factory=list)
    empty: int = 0
    ids: list[int] = field(default_factory=list)
    #: seconds each call took (statement sent → rows read), the calls that found some
    took: list[float] = field(default_factory=list)

    async def run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            if not self.synchronous_commit:
                await conn.execute("SET synchronous_commit = off")
            await conn.execute(f"LISTEN {WAKE}")
            cur = conn.cursor()
            self.ready.set()
            while not self.stop.is_set():
                started = time.perf_counter()
                await cur.execute(POSITION, prepare=True)
                rows: Rows = await cur.fetchall()
                if rows:
                    self.took.append(time.perf_counter() - started)
                    self.batches.append(len(rows))
                    self.ids += [row[0] for row in rows]
                    await self.deliver(rows)
                    continue  # while events keep coming, call again
                self.empty += 1
                # a wake-up (those received during the call wait here, and end this at once)
                async for _ in conn.notifies(timeout=0.1, stop_after=1):
                    pass


# -- one measurement ------------------------------------------------------------------------
@dataclass
class Sample:
    """One pipeline's run: the writer's commit times and the receiver's reads."""

    acks: list[float]
    seqnos: list[int]
    times: list[float]
    batches: list[int] = field(default_factory=list)
    empty: int = 0
    took: list[float] = field(default_factory=list)


async def _wait(pending: Any) -> Any:
    while not pending.ready():
        await asyncio.sleep(0.02)
    return pending.get()


async def _measure(
    pipeline: str, url: str, redis_url: str, pool: Any, count: int, rate: float | None, ctx: Any
) -> Sample:
    table = NOTIFY_TABLE if pipeline == FLOOR else LOGGED_TABLE
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {NOTIFY_TABLE}, {LOGGED_TABLE}, {LOG}")
    channel = f"bench_fp:{os.getpid()}"
    receiver = None
    got, sent = ctx.Pipe(duplex=False)
    ready = ctx.Event()
    if pipeline == FLOOR:
        receiver = ctx.Process(target=receive_notify, args=(url, ready, sent))
    elif pipeline != DURABLE:
        receiver = ctx.Process(target=receive_redis, args=(redis_url, channel, ready, sent))
    if receiver is not None:
        receiver.start()
        if not await asyncio.to_thread(ready.wait, 30):
            raise RuntimeError(f"{pipeline}: the receiver did not start")
    seqnos: list[int] = []
    times: list[float] = []
    queue: asyncio.Queue[Rows] = asyncio.Queue()
    client = redis.asyncio.Redis.from_url(redis_url)

    async def hand_over(rows: Rows) -> None:
        queue.put_nowait(rows)

    async def publish(rows: Rows) -> None:
        await client.publish(channel, "[" + ",".join(f'{{"id":{i},"row":{p}}}' for i, _, p in rows) + "]")

    async def take() -> None:
        while True:
            rows = await queue.get()
            now = time.time()
            seqnos.extend(row[1] for row in rows)
            times.extend([now] * len(rows))

    positioner = None
    tasks: list[asyncio.Task[None]] = []
    if pipeline != FLOOR:
        positioner = Positioner(url, hand_over if pipeline == DURABLE else publish, pipeline != ASYNC)
        tasks.append(asyncio.ensure_future(positioner.run()))
        if pipeline == DURABLE:
            tasks.append(asyncio.ensure_future(take()))
        await positioner.ready.wait()
    acks: list[float] = await _wait(pool.apply_async(write, (url, table, count, rate)))
    # the rest on its way, then a stop behind it on the same path
    deadline = time.monotonic() + 10
    while positioner is not None and sum(positioner.batches) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    if positioner is not None:
        positioner.stop.set()
    if pipeline == FLOOR:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (FLOOR_CHANNEL, STOP))
    elif pipeline != DURABLE:
        await client.publish(channel, STOP)
    if receiver is not None:
        if not await asyncio.to_thread(got.poll, 30):
            raise RuntimeError(f"{pipeline}: the receiver did not report")
        seqnos, times = got.recv()
        receiver.join()
    for task in tasks:
        if positioner is not None and task is not tasks[0]:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    await client.aclose()
    sample = Sample(acks, seqnos, times)
    if positioner is not None:
        sample.batches, sample.empty, sample.took = positioner.batches, positioner.empty, positioner.took
        if len(set(positioner.ids)) != len(positioner.ids):
            raise RuntimeError(f"{pipeline}: an id was given twice")
    return sample


# -- the run --------------------------------------------------------------------------------
@dataclass
class Result:
    """One pipeline in one scenario, over every round."""

    pipeline: str
    scenario: str
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    writer_per_s: list[float] = field(default_factory=list)
    p50_per_round: list[float] = field(default_factory=list)
    latency: Latency | None = None
    events_per_call: float | None = None
    calls: int = 0
    empty_calls: int = 0
    #: p50 and p99 ms of the positioning calls that found events
    call_ms: tuple[float, float] | None = None
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        count = len(sample.acks)
        self.expected += count
        self.received += len(sample.seqnos)
        distinct = set(sample.seqnos)
        self.duplicates += len(sample.seqnos) - len(distinct)
        self.lost += len(set(range(count)) - distinct)
        if count > 1:
            self.writer_per_s.append((count - 1) / (sample.acks[-1] - sample.acks[0]))
        one = Latency.of(sample.acks, sample.seqnos, sample.times)
        if one is not None:
            self.p50_per_round.append(one.p50)
        self.calls += len(sample.batches)
        self.empty_calls += sample.empty

    def finish(self) -> None:
        acks: list[float] = []
        seqnos: list[int] = []
        times: list[float] = []
        for sample in self.samples:  # each round's seqnos after the previous rounds'
            seqnos += [s + len(acks) for s in sample.seqnos]
            times += sample.times
            acks += sample.acks
        self.latency = Latency.of(acks, seqnos, times)
        positioned = sum(sum(s.batches) for s in self.samples)
        self.events_per_call = positioned / self.calls if self.calls else None
        took = sorted(t for s in self.samples for t in s.took)
        if took:
            self.call_ms = (1000 * took[len(took) // 2], 1000 * took[min(len(took) - 1, int(0.99 * len(took)))])

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "scenario": self.scenario,
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "writer_per_s": [round(r) for r in self.writer_per_s],
            "p50_per_round_ms": [round(p, 3) for p in self.p50_per_round],
            "latency_ms": None if self.latency is None else vars(self.latency),
            "events_per_call": self.events_per_call,
            "calls": self.calls,
            "empty_calls": self.empty_calls,
            "call_ms_p50_p99": self.call_ms,
        }


def run(url: str, redis_url: str, events: int, isolated: int, rounds: int) -> list[Result]:
    """Every pipeline in each scenario, ``rounds`` times, in a new random order each round."""
    scenarios: list[tuple[str, int, float | None]] = []
    if events:
        scenarios.append(("writer flat out", events, None))
    if isolated:
        scenarios.append(("isolated commits, 10/s", isolated, 10.0))
    results = {(p, s): Result(p, s) for p in PIPELINES for s, _, _ in scenarios}
    ctx = multiprocessing.get_context("spawn")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SETUP:
            conn.execute(statement)
    try:
        with ctx.Pool(1) as pool:
            pool.apply(write, (url, LOGGED_TABLE, 20, None))  # the writer's process warmed up
            for _ in range(rounds):
                for scenario, count, rate in scenarios:
                    for pipeline in random.sample(PIPELINES, len(PIPELINES)):
                        sample = asyncio.run(_measure(pipeline, url, redis_url, pool, count, rate, ctx))
                        results[(pipeline, scenario)].add(sample)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in TEARDOWN:
                conn.execute(statement)
    for result in results.values():
        result.finish()
    return list(results.values())


def _range(values: list[float], digits: int) -> str:
    if not values:
        return ""
    low, high = f"{min(values):,.{digits}f}", f"{max(values):,.{digits}f}"
    return low if low == high else f"{low}-{high}"


def table(results: list[Result]) -> str:
    """One row per pipeline and scenario: latency over every round (p50 of each round beside
    it), the writer's rate, events per positioning call, and what arrived."""
    rows = []
    for r in results:
        per_call = (
            "" if r.events_per_call is None else f"{r.events_per_call:.2f} ({r.calls:,}; {r.empty_calls:,} empty)"
        )
        call = "" if r.call_ms is None else f"{r.call_ms[0]:.2f} / {r.call_ms[1]:.2f}"
        rows.append(
            (
                f"{r.scenario}: {r.pipeline}",
                [
                    str(r.latency) if r.latency else "",
                    _range(r.p50_per_round, 2),
                    _range(r.writer_per_s, 0),
                    per_call,
                    call,
                    f"{r.received:,}/{r.expected:,}, {r.lost} lost, {r.duplicates} dup",
                ],
            )
        )
    out = sides_table("pipeline", 6, rows).splitlines()
    out[0] = (
        "| scenario: pipeline | p50 / p90 / p99 / max ms | p50 per round | writer commits/s "
        "| events per positioning call (calls; finding none) | positioning call p50 / p99 ms | received |"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floorprobe", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a migrated database of one's own (scratch tables)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--events", type=int, default=5000, help="commits flat out per pipeline and round (default 5,000)")
    p.add_argument("--isolated", type=int, default=50, help="commits at 10/s per pipeline and round (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    results = run(args.database_url, args.redis_url, args.events, args.isolated, args.rounds)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.as_dict() for r in results], f, indent=2)
    bad = [r for r in results if r.lost or r.duplicates]
    if bad:
        print("lost or duplicated: " + ", ".join(f"{r.scenario}: {r.pipeline}" for r in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
