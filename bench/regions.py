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
harness, the floor the shared path is measured against (the 1,000 clients run in this one
process, on the same cores as the server, and each frame's arrival is stamped after the
frames before it were read).

    .venv/bin/python -m bench.regions --clients 1000 --seconds 60 --rounds 3 --compare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

import psycopg
import websockets

from . import demo


def token() -> str:
    """The demo people page's row region, signed with the test settings' ``SECRET_KEY``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from pgevents.delivery.render import RegionSpec
    from pgevents.signing import sign_region

    return sign_region(RegionSpec("people", "/people/row/{key}/", "pk", "/people/rows/"))


async def subscriber(
    url: str, region: str, ready: asyncio.Event, seen: list[tuple[int, float, bool]], n: list[int], total: int
) -> None:
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
                html = next(iter((msg.get("html") or {}).values()), {}).get("html") or ""
                seen.append((msg["row"]["pk"], time.time(), "<tr" in html))


async def drive(
    port: int, db_url: str, clients: int, seconds: int, region: str
) -> tuple[dict[int, float], list[tuple[int, float, bool]]]:
    ready = asyncio.Event()
    seen: list[tuple[int, float, bool]] = []
    n = [0]
    url = f"ws://127.0.0.1:{port}/ws/pgevents/"
    tasks = []
    for i in range(clients):
        tasks.append(asyncio.ensure_future(subscriber(url, region, ready, seen, n, clients)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    await asyncio.wait_for(ready.wait(), 180)
    print(f"{clients} subscribers subscribed")
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
    deadline = time.monotonic() + 30
    while len(seen) < clients * seconds and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return committed, seen


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
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/pgevents_bench_regions")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    region = token()
    kinds = [("shared", region), ("plain", "")] if args.compare else [("shared", region)]
    results: dict[str, list[tuple[float, float, float, int]]] = {kind: [] for kind, _ in kinds}
    with demo.serve(args.database_url, "regions") as served:
        for number in range(1, args.rounds + 1):
            for kind, subscribed in kinds:
                served.forget()
                committed, seen = asyncio.run(
                    drive(served.port, args.database_url, args.clients, args.seconds, subscribed)
                )
                results[kind].append(report(f"{number} ({kind})", committed, seen, served.requests(), args.clients))
    for kind, found in results.items():
        if len(found) > 1:
            p50s, p99s, renders, http = zip(*found, strict=True)
            print(
                f"{kind}, over {len(found)} rounds: p50 {min(p50s):.0f}-{max(p50s):.0f} ms,"
                f" p99 {min(p99s):.0f}-{max(p99s):.0f} ms, renders per change {min(renders):.2f}-{max(renders):.2f},"
                f" HTTP requests to Django {min(http)}-{max(http)}"
            )


def report(
    number: str, committed: dict[int, float], seen: list[tuple[int, float, bool]], lines: list[str], clients: int
) -> tuple[float, float, float, int]:
    """Print one round's figures; return (p50, p99, renders per change, HTTP requests)."""
    renders = sum(1 for line in lines if line.startswith("shared "))
    http = sum(1 for line in lines if line.startswith("http "))
    latencies = sorted((t - committed[pk]) * 1000 for pk, t, _ in seen if pk in committed)
    with_html = sum(1 for *_, h in seen if h)
    changes = len(committed)
    print(
        f"round {number}: changes: {changes}; frames received: {len(seen):,} of {changes * clients:,};"
        f" with the row's HTML: {with_html:,}"
    )
    per_change = renders / max(changes, 1)
    print(f"renders per change: {per_change:.2f} (server processes: 1); HTTP requests to Django: {http}")
    if not latencies:
        return (float("nan"), float("nan"), per_change, http)
    q = statistics.quantiles(latencies, n=100)
    print(f"commit -> HTML received: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {latencies[-1]:.0f} ms")
    # Where a tail comes from: a change that reached everyone late (its first frame late:
    # the render or the pipeline), or one whose frames spread out (the fan-out).
    by_change: dict[int, list[float]] = {}
    for pk, t, _ in seen:
        if pk in committed:
            by_change.setdefault(pk, []).append((t - committed[pk]) * 1000)
    firsts = sorted(min(v) for v in by_change.values())
    spreads = sorted(max(v) - min(v) for v in by_change.values())
    print(
        f"per change: first frame p50 {statistics.median(firsts):.0f} ms, max {firsts[-1]:.0f} ms;"
        f" first to last frame p50 {statistics.median(spreads):.0f} ms, max {spreads[-1]:.0f} ms"
    )
    return (q[49], q[98], per_change, http)


if __name__ == "__main__":
    main()
