"""The listener's stage taken apart: ``python -m bench.steps``.

``--stages`` cuts each delivery at Redis; this takes the first part, commit → published,
apart. It runs one real ``Listener`` in this process (its connection, the benchmark's
channel layer, Redis) against a database of its own, with a writer in another process, and
notes for every event when each step of the listener's work on it began and ended:

- **commit → wake-up**: the writer's commit acknowledgement to the wake-up ``NOTIFY`` taken
  by the loop (none while the listener polls the log);
- **→ sequencer call**: on to the start of the ``pgevents_assign`` call that positioned the
  event (the loop's own work, the look in flight, or the tick while polling);
- **sequencer call**: the one round trip that positions, commits and returns the frames;
- **→ publish**: on to the start of the event's ``group_send`` (building the layer message,
  waiting for the previous publish);
- **publish**: the ``group_send`` itself (one Redis ``PUBLISH``).

Only thin timers are added: the listener's connection is a ``psycopg.AsyncConnection``
subclass whose ``execute`` notes each statement's span, and the channel layer is wrapped to
note each send. The listener process's CPU time per event is reported beside the steps.
Run it under the benchmark lock: it measures latency.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from . import database, servers
from .writer import write

SEQNO = re.compile(r"seqno\W+(\d+)")
ASSIGN = "pgevents_assign"


@dataclass
class Trace:
    """Spans noted while the writer runs (``time.time()``, the writer's clock too)."""

    statements: list[tuple[str, float, float]] = field(default_factory=list)
    #: (start, end, seqnos) of each group_send
    sends: list[tuple[float, float, list[int]]] = field(default_factory=list)
    wakeups: list[float] = field(default_factory=list)


TRACE = Trace()


class TimedConnection(psycopg.AsyncConnection[Any]):
    async def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        t0 = time.time()
        try:
            return await super().execute(query, params, **kw)
        finally:
            text = query if isinstance(query, str) else repr(query)
            TRACE.statements.append((text.split("(")[0][:60], t0, time.time()))


class TimedLayer:
    """The channel layer, with each ``group_send`` noted."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        t0 = time.time()
        await self.layer.group_send(group, message)
        seqnos = [int(m) for m in SEQNO.findall(json.dumps(message))]
        TRACE.sends.append((t0, time.time(), seqnos))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def analyse(acks: list[float], trace: Trace) -> dict[str, Any]:
    """Per step, p50/p90/p99 in ms over every event; and how the looks went."""
    assigns = [(t0, t1) for label, t0, t1 in trace.statements if ASSIGN in label]
    ends = [end for _, end in assigns]
    sent = {s: (t0, t1) for t0, t1, seqnos in trace.sends for s in seqnos}
    steps: dict[str, list[float]] = {k: [] for k in ("commit → wake-up", "→ sequencer call", "sequencer call")}
    steps.update({"→ publish": [], "publish": [], "commit → published": []})
    for seqno, ack in enumerate(acks):
        if seqno not in sent:
            continue
        p0, p1 = sent[seqno]
        k = bisect.bisect_right(ends, p0) - 1
        if k < 0:
            continue
        call = assigns[k]
        # the wake-up that started this call, if this event's commit sent it: taken after the
        # previous call ended, and not before the commit (it may precede the writer's own
        # note of its commit by a fraction of a millisecond)
        since = max(assigns[k - 1][1] if k else 0.0, ack - 0.0005)
        i = bisect.bisect_right(trace.wakeups, call[0]) - 1
        wake = trace.wakeups[i] if i >= 0 and trace.wakeups[i] >= since else None
        if wake is not None:
            steps["commit → wake-up"].append(wake - ack)
        steps["→ sequencer call"].append(call[0] - (wake if wake is not None else ack))
        steps["sequencer call"].append(call[1] - call[0])
        steps["→ publish"].append(p0 - call[1])
        steps["publish"].append(p1 - p0)
        steps["commit → published"].append(p1 - ack)
    out: dict[str, Any] = {
        name: [round(1000 * _pct(v, p), 3) for p in (0.5, 0.9, 0.99)] + [len(v)] for name, v in steps.items()
    }
    counts: dict[str, int] = {}
    for label, _, _ in trace.statements:
        counts[label] = counts.get(label, 0) + 1
    out["statements"] = counts
    out["events"] = len(steps["commit → published"])
    return out


async def _run(url: str, count: int, rate: float | None, pacing: Any = None) -> tuple[list[float], float]:
    from channels.layers import get_channel_layer

    from pgevents.capture.listener import Listener

    class TracedListener(Listener):
        def _take(self, channel: str, payload: str, plain: list[Any]) -> int:
            TRACE.wakeups.append(time.time())
            return super()._take(channel, payload, plain)

    listener = TracedListener(
        layer=TimedLayer(get_channel_layer()),
        connect=lambda: TimedConnection.connect(url, autocommit=True),
        pacing=pacing,
    )
    task = asyncio.ensure_future(listener.run())
    await listener.connected.wait()
    await asyncio.sleep(0.5)
    for part in (TRACE.statements, TRACE.sends, TRACE.wakeups):
        part.clear()
    cpu = time.process_time()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(write, (url, "bench_events", count, rate))
        while not pending.ready():
            await asyncio.sleep(0.05)
        acks = pending.get()
    await asyncio.sleep(0.5)
    cpu = time.process_time() - cpu
    listener.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return acks, cpu


def measure(url: str, count: int, rate: float | None, pacing: Any = None) -> dict[str, Any]:
    """One run of ``count`` commits at ``rate`` per second (None: flat out); ``pacing`` the
    listener's (``pgevents.capture.pacing.Pacing``; None: its default)."""
    acks, cpu = asyncio.run(_run(url, count, rate, pacing))
    result = analyse(acks, TRACE)
    result["listener CPU µs/event"] = round(1e6 * cpu / max(result["events"], 1))
    result["writer commits/s"] = round((len(acks) - 1) / (acks[-1] - acks[0])) if len(acks) > 1 else 0
    return result


def report(name: str, result: dict[str, Any]) -> str:
    lines = [f"## {name}: {result['events']:,} events, writer {result['writer commits/s']:,}/s", ""]
    lines += ["| step | p50 ms | p90 ms | p99 ms | events |", "|---|---|---|---|---|"]
    for step, value in result.items():
        if isinstance(value, list):
            lines.append(f"| {step} | {value[0]} | {value[1]} | {value[2]} | {value[3]:,} |")
    lines.append("")
    lines.append(
        f"listener CPU per event: {result['listener CPU µs/event']:,} µs; statements: "
        + ", ".join(f"{label} x{n:,}" for label, n in sorted(result["statements"].items(), key=lambda kv: -kv[1]))
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__.split("\n\n")[0])
    p.add_argument("--isolated", type=int, default=50, help="commits 100 ms apart (default 50; 0: none)")
    p.add_argument("--stream", type=int, default=5000, help="commits flat out (default 5,000; 0: none)")
    p.add_argument("--rate", action="append", default=[], help="COUNTxRATE: commits at RATE per second")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/pgevents_bench_steps")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--pace", type=float, help="the listener's pacing factor (runlisten --pace; default: its own)")
    p.add_argument("--pace-cap", type=float, help="the longest pause (runlisten --pace-cap; default: its own)")
    args = p.parse_args(argv)
    runs: list[tuple[str, int, float | None]] = []
    if args.isolated:
        runs.append(("isolated commits, 10/s", args.isolated, 10.0))
    runs += [(f"{c} commits at {r}/s", int(c), float(r)) for c, r in (x.split("x") for x in args.rate)]
    if args.stream:
        runs.append(("writer flat out", args.stream, None))
    url = args.database_url
    env = servers.env_for(
        url, f"pgevents-steps-{os.getpid()}", REDIS_URL=args.redis_url, PGEVENTS_BENCH_LAYER="pgpubsub"
    )
    database.create(url)
    try:
        database.migrate(url, env)
        database.prepare(url)
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "DJANGO_SETTINGS_MODULE",
                    "PGEVENTS_REDIS_PREFIX",
                    "REDIS_URL",
                    "PGEVENTS_BENCH_LAYER",
                )
            }
        )
        import django

        django.setup()
        from pgevents.capture.pacing import PACE, PACE_CAP, Pacing

        pace = PACE if args.pace is None else args.pace
        pacing = Pacing(pace, PACE_CAP if args.pace_cap is None else args.pace_cap)
        for name, count, rate in runs:
            print(report(name, measure(url, count, rate, pacing)) + "\n", flush=True)
    finally:
        with contextlib.suppress(Exception):
            database.drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
