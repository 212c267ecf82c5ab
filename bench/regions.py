"""``python -m bench.regions``: many subscribers of one shared region, one change a second.

``--clients`` WebSocket subscribers (default 1,000) subscribe to channel ``people`` with the
demo's shared row region (signed as ``{% pgevents_region … shared=True %}`` signs it); a writer
inserts one row a second for ``--seconds``. Reported: renders per change (the server's own
in-process renders, from the test settings' request log, ``tests.hooks.RequestLog``), HTTP
requests to Django (none expected), and commit → HTML-received latency over every
(subscriber, change) pair, with the share of frames that carried the row's HTML. One daphne
process, runlisten, a database of its own (``pgevents_bench_regions``, dropped at the end).
No assertion: it prints figures. With ``--compare``, each round is followed by one with the
same number of clients subscribed without the region: plain events through the same
harness, the floor the shared path is measured against.

The clients (``--client``): ``lean`` (the default) are ``bench.wsclient`` sockets spread over
``--workers`` processes at normal priority, as the other fan-out benchmarks use: a frame is
stamped when its bytes are read, and reading one costs microseconds. ``websockets`` keeps
all of them in this process on the ``websockets`` library, parsing each frame's JSON: each
frame's arrival is stamped after the frames before it were parsed, so the clients' own
queue is part of the figure (the harness of the first measurements).

``--stages`` cuts each change's latency where it passes each step (``bench.trace`` inside
the server, ``stages.Tap`` on Redis): commit → published in Redis → received by the hub →
rendered → frames composed → first socket written → last socket written → first and last
client read, per change, with the slowest changes one by one and the server's garbage
collections beside them.

The server runs as a project's would, with pgevents' collector settings (``TUNE_GC``, on by
default; the test settings turn it off for the test process). ``--default-gc`` keeps
CPython's defaults instead: what a project that turned ``TUNE_GC`` off gets.

    .venv/bin/python -m bench.regions --clients 1000 --seconds 60 --rounds 3 --compare --stages
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import websockets

from . import demo, stages
from .clients import Workers

#: Stages in the order a change passes them: (name, label).
STAGES = (
    ("published", "published in Redis"),
    ("received", "received by the hub"),
    ("handed", "handed to every subscription"),
    ("render", "rendered"),
    ("composed", "frames composed"),
    ("first", "first socket written"),
    ("last", "last socket written"),
    ("read_first", "first client read"),
    ("read_last", "last client read"),
)
PK = re.compile(rb'"pk": (\d+)')
#: What ``bench.trace`` counts as a stall of the server's loop.
STALL_MS = 20


def token() -> str:
    """The demo people page's row region, signed with the test settings' ``SECRET_KEY``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from pgevents.delivery.render import RegionSpec
    from pgevents.signing import sign_region

    return sign_region(RegionSpec("people", "/people/row/{key}/", "pk", "/people/rows/"))


@dataclass
class Seen:
    """What the clients of one round received: (row pk, read at) per frame."""

    pks: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    html: int = 0


async def subscriber(url: str, region: str, ready: asyncio.Event, seen: Seen, n: list[int], total: int) -> None:
    origin = url.replace("ws://", "http://").split("/ws/")[0]
    async with websockets.connect(url, origin=origin, max_size=None, open_timeout=60) as ws:  # type: ignore[arg-type]
        regions = [region] if region else []  # none: plain events, the fan-out without HTML
        await ws.send(json.dumps({"type": "subscribe", "channel": "people", "regions": regions}))
        async for text in ws:
            msg = json.loads(text)
            if msg["type"] == "subscribed":
                n[0] += 1
                if n[0] == total:
                    ready.set()
            elif msg["type"] == "event" and msg.get("row"):
                regions_html: dict[str, dict[str, str]] = msg.get("html") or {}
                html = next(iter(regions_html.values()), {}).get("html") or ""
                seen.pks.append(msg["row"]["pk"])
                seen.times.append(time.time())
                seen.html += "<tr" in html


async def write(db_url: str, seconds: int) -> dict[int, float]:
    """One INSERT a second; the commit acknowledgement's time by row pk."""
    committed: dict[int, float] = {}
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as pg:
        start = time.monotonic()
        for i in range(seconds):
            cur = await pg.execute(
                "INSERT INTO people (name, age, height) VALUES (%s, 1, 1.7) RETURNING pk", (f"r{i}",)
            )
            row = await cur.fetchone()
            assert row is not None
            committed[int(row[0])] = time.time()
            await asyncio.sleep(max(0.0, start + i + 1 - time.monotonic()))
    return committed


async def drive_websockets(
    port: int, db_url: str, clients: int, seconds: int, region: str
) -> tuple[dict[int, float], Seen]:
    ready = asyncio.Event()
    seen = Seen()
    n = [0]
    url = f"ws://127.0.0.1:{port}/ws/pgevents/"
    tasks = []
    for i in range(clients):
        tasks.append(asyncio.ensure_future(subscriber(url, region, ready, seen, n, clients)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    await asyncio.wait_for(ready.wait(), 180)
    print(f"{clients} subscribers subscribed")
    committed = await write(db_url, seconds)
    deadline = time.monotonic() + 30
    while len(seen.times) < clients * seconds and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return committed, seen


def drive_lean(
    port: int, db_url: str, clients: int, seconds: int, region: str, workers: int
) -> tuple[dict[int, float], Seen]:
    path = "/ws/pgevents/people/" + (f"?regions={region}" if region else "")
    pool = Workers(workers)
    try:
        pool.connect("127.0.0.1", port, path, clients, concurrency=50, key="pk")
        print(f"{clients} subscribers subscribed ({workers} client processes)")
        committed = asyncio.run(write(db_url, seconds))
        seen = Seen()
        for result in pool.wait(seconds, 30):
            seen.pks.frombytes(result.seqnos)
            seen.times.frombytes(result.times)
            seen.html += result.html
        return committed, seen
    finally:
        pool.close()


@dataclass
class Trace:
    """The server's stage times (``bench.trace``) and the Redis tap, by row pk."""

    stages: dict[int, dict[str, float]]
    collections: list[tuple[float, float, int]]
    #: (start, seconds, CPU seconds of the loop's thread) of each stall of the server's loop.
    stalls: list[tuple[float, float, float]]

    @classmethod
    def read(cls, path: Path, published: dict[int, float]) -> Trace:
        time.sleep(1.5)  # the server writes its records once a second
        data = json.loads(path.read_text()) if path.exists() else {}
        by_pk: dict[int, dict[str, float]] = {}
        for id_, pk in data.get("pks", {}).items():
            by_pk[int(pk)] = dict(data["stages"].get(id_, {}))
        for pk, when in published.items():
            by_pk.setdefault(pk, {})["published"] = when
        collections = [tuple(c) for c in data.get("collections", [])]
        stalls = [tuple(c) for c in data.get("stalls", [])]
        return cls(by_pk, collections, stalls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=1, help="runs of --seconds each, on the same server")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="after each round, one with the same clients subscribed without the region (plain events)",
    )
    parser.add_argument("--client", choices=("lean", "websockets"), default="lean", help="see above")
    parser.add_argument("--workers", type=int, default=2, help="client processes of the lean clients")
    parser.add_argument("--stages", action="store_true", help="each change cut into stages (see above)")
    parser.add_argument("--slowest", type=int, default=5, help="with --stages: changes shown one by one")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="the server keeps CPython's default collector (PGEVENTS['TUNE_GC'] False, as the test settings)",
    )
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/pgevents_bench_regions")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    region = token()
    kinds = [("shared", region), ("plain", "")] if args.compare else [("shared", region)]
    results: dict[str, list[tuple[float, float, float, int]]] = {kind: [] for kind, _ in kinds}
    trace_file = Path(tempfile.mkdtemp()) / "trace.json"
    # A serving process, as a project's: the collector tuned (pgevents.conf TUNE_GC, the default).
    extra = {} if args.default_gc else {"PGEVENTS_TEST_TUNE_GC": "1"}
    if args.stages:
        extra["PGEVENTS_BENCH_TRACE"] = str(trace_file)
    with demo.serve(args.database_url, "regions", args.port, extra) as served:
        for number in range(1, args.rounds + 1):
            for kind, subscribed in kinds:
                served.forget()
                tap = None
                if args.stages:
                    from pgevents.core.names import group_name

                    tap = stages.Tap(os.environ["REDIS_URL"], served.redis_prefix, group_name("people"), PK)
                try:
                    if args.client == "lean":
                        committed, seen = drive_lean(
                            served.port, args.database_url, args.clients, args.seconds, subscribed, args.workers
                        )
                    else:
                        committed, seen = asyncio.run(
                            drive_websockets(served.port, args.database_url, args.clients, args.seconds, subscribed)
                        )
                finally:
                    if tap is not None:
                        tap.close()
                name = f"{number} ({kind})"
                results[kind].append(report(name, committed, seen, served.requests(), args.clients))
                if tap is not None:
                    breakdown(Trace.read(trace_file, tap.seen), committed, seen, args.slowest)
    for kind, found in results.items():
        if len(found) > 1:
            p50s, p99s, renders, http = zip(*found, strict=True)
            print(
                f"{kind}, over {len(found)} rounds: p50 {min(p50s):.0f}-{max(p50s):.0f} ms,"
                f" p99 {min(p99s):.0f}-{max(p99s):.0f} ms, renders per change {min(renders):.2f}-{max(renders):.2f},"
                f" HTTP requests to Django {min(http)}-{max(http)}"
            )


def by_change(committed: dict[int, float], seen: Seen) -> dict[int, list[float]]:
    """Each change's frames: ms from its commit to each read."""
    out: dict[int, list[float]] = {}
    for pk, t in zip(seen.pks, seen.times, strict=True):
        if pk in committed:
            out.setdefault(pk, []).append((t - committed[pk]) * 1000)
    return out


def report(
    number: str, committed: dict[int, float], seen: Seen, lines: list[str], clients: int
) -> tuple[float, float, float, int]:
    """Print one round's figures; return (p50, p99, renders per change, HTTP requests)."""
    renders = sum(1 for line in lines if line.startswith("shared "))
    http = sum(1 for line in lines if line.startswith("http "))
    frames = by_change(committed, seen)
    latencies = sorted(ms for found in frames.values() for ms in found)
    changes = len(committed)
    print(
        f"round {number}: changes: {changes}; frames received: {len(seen.times):,} of {changes * clients:,};"
        f" with the row's HTML: {seen.html:,}"
    )
    per_change = renders / max(changes, 1)
    print(f"renders per change: {per_change:.2f} (server processes: 1); HTTP requests to Django: {http}")
    if not latencies:
        return (float("nan"), float("nan"), per_change, http)
    q = statistics.quantiles(latencies, n=100)
    print(f"commit -> HTML received: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {latencies[-1]:.0f} ms")
    # Where a tail comes from: a change that reached everyone late (its first frame late:
    # the render or the pipeline), or one whose frames spread out (the fan-out).
    firsts = sorted(min(v) for v in frames.values())
    spreads = sorted(max(v) - min(v) for v in frames.values())
    print(
        f"per change: first frame p50 {statistics.median(firsts):.0f} ms, max {firsts[-1]:.0f} ms;"
        f" first to last frame p50 {statistics.median(spreads):.0f} ms, max {spreads[-1]:.0f} ms"
    )
    return (q[49], q[98], per_change, http)


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def breakdown(trace: Trace, committed: dict[int, float], seen: Seen, slowest: int) -> None:
    """Per stage, ms after commit over the round's changes; then the slowest changes one by one."""
    frames = by_change(committed, seen)
    rows: dict[int, dict[str, float]] = {}
    for pk, commit in committed.items():
        stages_ = {k: (v - commit) * 1000 for k, v in trace.stages.get(pk, {}).items()}
        # The hub's fan-out: for plain events it writes every socket itself (first and last
        # socket written); a shared region's sinks take the event there, and write it later.
        if "fanout_end" in stages_:
            handed = stages_.pop("fanout_end")
            start = stages_.pop("fanout_start", handed)
            if "first" in stages_:
                stages_["handed"] = handed
            else:
                stages_["first"], stages_["last"] = start, handed
        if pk in frames:
            stages_["read_first"] = min(frames[pk])
            stages_["read_last"] = max(frames[pk])
            stages_["read_p99"] = _pct(frames[pk], 0.99)
        rows[pk] = stages_
    print("  stage (ms after commit, over the changes)   p50     p90     p99     max")
    for stage, label in STAGES:
        values = [r[stage] for r in rows.values() if stage in r]
        if values:
            print(
                f"  {label:<42} {_pct(values, 0.5):7.1f} {_pct(values, 0.9):7.1f}"
                f" {_pct(values, 0.99):7.1f} {max(values):7.1f}"
            )
    start, end = min(committed.values()), max(committed.values()) + 2
    within = [c for c in trace.collections if start <= c[0] <= end]
    for generation in (0, 1, 2):
        took = [c[1] * 1000 for c in within if c[2] == generation]
        if took:
            print(
                f"  garbage collections, generation {generation}: {len(took)}, {sum(took):.0f} ms in all,"
                f" longest {max(took):.1f} ms"
            )
    stalled = [c for c in trace.stalls if start <= c[0] <= end]
    if stalled:
        print(
            f"  stalls of the server's event loop over {STALL_MS} ms: {len(stalled)}, longest"
            f" {max(c[1] for c in stalled) * 1000:.0f} ms"
        )
    late = sorted(rows, key=lambda pk: rows[pk].get("read_last", 0), reverse=True)[:slowest]
    print(f"  the {len(late)} changes whose last frame was read latest (ms after commit):")
    for pk in late:
        r = rows[pk]
        cells = ", ".join(f"{name} {r[name]:.0f}" for name, _ in STAGES if name in r)
        commit = committed[pk]
        gcs = [
            f"gen{g} {took * 1000:.0f} ms at {(at - commit) * 1000:.0f}"
            for at, took, g in trace.collections
            if commit - 0.05 <= at <= commit + r.get("read_last", 0) / 1000 and took >= 0.005
        ]
        stops = [
            f"{took * 1000:.0f} ms (loop thread on CPU {cpu * 1000:.0f} ms) at {(at - commit) * 1000:.0f}"
            for at, took, cpu in trace.stalls
            if commit - 0.05 <= at <= commit + r.get("read_last", 0) / 1000
        ]
        print(
            f"    pk {pk}: {cells}; p99 of its frames {r.get('read_p99', float('nan')):.0f}"
            + (f"; collections: {', '.join(gcs)}" if gcs else "")
            + (f"; loop stalls: {', '.join(stops)}" if stops else "")
        )


if __name__ == "__main__":
    main()
