"""Inside the server under test: when each event passed each stage of delivery (``--stages``).

``bench.regions --stages`` starts its daphne with ``PGEVENTS_BENCH_TRACE=<file>``; the test
settings then add this app, whose ``ready()`` wraps a few methods of the delivery path in
that process to note the time (``time.time()``, comparable with the benchmark's own clock on
the same machine) at which each event, by its durable id:

- ``received``: reached the hub from the channel layer (the start of a dispatch);
- ``render``: its shared render finished (``RenderCache``, one per change);
- ``composed``: the frames of its run with their HTML were ready (``RenderCache.compose``);
- ``first``/``last``: was written to the first and the last socket. For a shared region,
  the start and end of the callbacks that write the composed run (``Waves._written``); for
  plain events the hub's fan-out writes every socket itself, so its start and end
  (``fanout_start``/``fanout_end``; for a shared region, when every sink had the event);

and every collection of the cyclic garbage collector (start, duration, generation), and
every stall of the event loop (a probe that sleeps 5 ms woke more than 20 ms late: when, how
long, and how much CPU the loop's thread used meanwhile: near the stall's length, the loop
was busy; near zero, the process did not get a core), so a late change can be laid beside
what the process was doing. The wrappers are the only change to
the process; they cost a dictionary update per event and stage (per socket for ``first``/
``last``: a comparison). The records are written to the file once a second, as JSON.

Not a part of pgevents: the benchmark's own probe, like ``stages.Tap`` on the Redis side.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from django.apps import AppConfig

PK = re.compile(r'"pk": (\d+)')

#: event id -> stage -> time; event id -> row pk.
STAGES: dict[int, dict[str, float]] = {}
PKS: dict[int, int] = {}
#: (start, seconds, generation) of each collection.
COLLECTIONS: list[tuple[float, float, int]] = []
#: (start, seconds, CPU seconds of the loop's thread meanwhile) of each stall of the loop.
STALLS: list[tuple[float, float, float]] = []
#: The probe's sleep, and how late it must wake to count as a stall.
PROBE, STALL = 0.005, 0.020


def note(id_: Any, stage: str, when: float, first: bool = True) -> None:
    """``first``: keep the earliest time of ``stage``; otherwise the latest."""
    if not isinstance(id_, int):
        return
    stages = STAGES.setdefault(id_, {})
    if first:
        stages.setdefault(stage, when)
    else:
        stages[stage] = when


def _collections() -> None:
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            took = time.perf_counter() - started.pop()
            COLLECTIONS.append((time.time() - took, took, int(info.get("generation", -1))))

    gc.callbacks.append(callback)


async def _probe() -> None:
    while True:
        wall, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(PROBE)
        late = time.perf_counter() - wall - PROBE
        if late > STALL:
            STALLS.append((time.time() - late, late, time.thread_time() - cpu))


def _dump(path: Path) -> None:
    while True:
        time.sleep(1.0)
        for _ in range(5):  # the event loop may change the dictionaries while they are read
            try:
                data = {
                    "stages": {str(k): dict(v) for k, v in list(STAGES.items())},
                    "pks": {str(k): v for k, v in list(PKS.items())},
                    "collections": list(COLLECTIONS),
                    "stalls": list(STALLS),
                }
                break
            except RuntimeError:
                continue
        else:
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)


def install(path: Path) -> None:
    from pgevents.core.batch import is_heartbeat, unpack
    from pgevents.delivery.hub import Hub
    from pgevents.delivery.render import RenderCache
    from pgevents.delivery.shared import SharedSink, Waves

    dispatch_all = Hub._dispatch_all

    probing: list[asyncio.Task[None]] = []

    async def traced_dispatch_all(self: Hub, messages: list[dict[str, Any]]) -> None:
        now = time.time()
        if not probing:  # the first message: the loop runs
            probing.append(asyncio.ensure_future(_probe()))
        for message in messages:
            if is_heartbeat(message) or not isinstance(message.get("channel"), str):
                continue
            for event in unpack(message):
                note(event.get("id"), "received", now)
                match = PK.search(event.get("frame") or "")
                id_ = event.get("id")
                if match and isinstance(id_, int):
                    PKS[id_] = int(match.group(1))
        await dispatch_all(self, messages)

    fan_out = Hub._fan_out

    async def traced_fan_out(self: Hub, channel: str, events: list[Any]) -> None:
        start = time.time()
        await fan_out(self, channel, events)
        end = time.time()
        for event in events:
            note(event["id"], "fanout_start", start)
            note(event["id"], "fanout_end", end, first=False)

    render = RenderCache._render

    async def traced_render(self: RenderCache, key: Any) -> Any:
        rendered = await render(self, key)
        note(key[1], "render", time.time())
        return rendered

    composing = RenderCache._composing

    async def traced_composing(self: RenderCache, key: Any, make: Any) -> Any:
        value = await composing(self, key, make)
        now = time.time()
        for _, id_ in key[0]:
            note(id_, "composed", now)
        return value

    runs: dict[int, tuple[int, ...]] = {}
    composed = SharedSink._composed

    def traced_composed(self: SharedSink, run: Any) -> Any:
        future = composed(self, run)
        runs[id(future)] = tuple(id_ for _, id_, _ in run if isinstance(id_, int))
        return future

    written = Waves._written

    def traced_written(self: Waves, future: asyncio.Future[list[tuple[str, bytes]]]) -> None:
        start = time.time()
        written(self, future)
        end = time.time()
        for id_ in runs.get(id(future), ()):
            note(id_, "first", start)
            note(id_, "last", end, first=False)

    Hub._dispatch_all = traced_dispatch_all  # type: ignore[method-assign]
    Hub._fan_out = traced_fan_out  # type: ignore[method-assign]
    RenderCache._render = traced_render  # type: ignore[method-assign]
    RenderCache._composing = traced_composing  # type: ignore[method-assign]
    SharedSink._composed = traced_composed  # type: ignore[method-assign]
    Waves._written = traced_written  # type: ignore[method-assign, assignment]
    _collections()
    threading.Thread(target=_dump, args=(path,), daemon=True).start()


class Trace(AppConfig):
    name = "bench.trace"
    label = "bench_trace"

    def ready(self) -> None:
        install(Path(os.environ["PGEVENTS_BENCH_TRACE"]))
