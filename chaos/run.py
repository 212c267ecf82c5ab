"""One chaos run, from a started topology to the data the verdict needs.

1. Every client connects and subscribes (so every change the writer makes is owed to it).
2. The writer writes for ``duration`` seconds while the fault schedule runs and clients drop
   and resume on their own plans.
3. The last fault is over; the run waits until every process is up and a listener active.
   Clients stop dropping; one more row per table goes in last (the fence).
4. The truth is read from the tables; the run waits (at most ``settle`` seconds) until every
   client holds every change, then stops the clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql as pgsql

from tests.support import wait_until

from . import schema, verdict
from .clients import Client, Stream
from .plan import CHANNELS, CLIENT_KINDS, Config, Fault, faults, join_after
from .topology import Topology
from .transports import KINDS
from .writer import Writer


@dataclass
class Injected:
    fault: Fault
    began: float
    over: float
    detail: str


@dataclass
class Outcome:
    cfg: Config
    started: float
    writer: Writer
    clients: list[Client]
    truth: set[schema.Change]
    timeline: list[Injected]
    converged: bool
    settle_seconds: float
    load: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def make_clients(cfg: Config, ports: list[int]) -> list[Client]:
    """``cfg.clients`` of each kind; one-channel clients alternate between the channels (in
    pairs, so each channel has early and late joiners)."""
    out: list[Client] = []
    for kind in CLIENT_KINDS:
        for i in range(cfg.clients):
            channels = CHANNELS if kind == "ws-multi" else (CHANNELS[i // 2 % len(CHANNELS)],)
            name = f"{kind}-{i}"
            out.append(KINDS[kind](name, channels, ports, cfg, join_after(cfg, i, name)))
    return out


def _inject(topo: Topology, fault: Fault) -> str:
    if fault.kind == "listener-kill":
        return topo.kill_listener()
    if fault.kind == "redis-restart":
        return topo.restart_redis(fault.down_for)
    if fault.kind.startswith("pg-restart-"):
        return topo.restart_postgres(fault.kind.removeprefix("pg-restart-"))
    if fault.kind == "daphne-kill":
        return topo.kill_daphne(fault.target, fault.down_for)
    raise ValueError(fault.kind)


async def _faults(topo: Topology, schedule: list[Fault], started: float, timeline: list[Injected]) -> None:
    for fault in schedule:
        await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
        began = time.monotonic()
        detail = await asyncio.to_thread(_inject, topo, fault)
        timeline.append(Injected(fault, began, time.monotonic(), detail))


def _fence(url: str) -> None:
    """One last row per table, written once everything is back (retried while PostgreSQL
    finishes recovering)."""

    def write() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                for table in CHANNELS:
                    conn.execute(
                        pgsql.SQL(
                            "INSERT INTO {} (k, size, payload) VALUES ('fence', 10, chaos_payload('fence', 0, 10))"
                        ).format(pgsql.Identifier(table))
                    )
            return True
        except psycopg.OperationalError:
            return False

    wait_until(write, 60, interval=0.5, what="the fence rows to be written")


def _owed(
    clients: list[Client], truth: set[schema.Change], writer: Writer
) -> list[tuple[Stream, set[tuple[str, int]]]]:
    by_channel = {ch: {c for c in truth if c[0] == ch} for ch in CHANNELS}
    return [
        (s, verdict.owed_to(s.start_at, by_channel[s.channel], writer.sent_at))
        for c in clients
        for s in c.streams.values()
    ]


async def drive(cfg: Config, topo: Topology, say: Callable[[str], None] = print) -> Outcome:
    clients = make_clients(cfg, topo.ports)
    for client in clients:
        client.start()
    try:
        return await _drive(cfg, topo, clients, say)
    finally:
        for client in clients:
            await client.stop()


async def _drive(cfg: Config, topo: Topology, clients: list[Client], say: Callable[[str], None]) -> Outcome:
    early = [c for c in clients if c.join_after is None]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in early)), 60)
    except TimeoutError:
        late = {c.name: c.notes[-3:] for c in early if not c.ready.is_set()}
        raise RuntimeError(f"clients could not subscribe within 60 s: {late}") from None
    say(f"{len(early)} clients subscribed, {len(clients) - len(early)} to join later; writing for {cfg.duration:g} s")
    writer = Writer(topo.url, cfg)
    timeline: list[Injected] = []
    started = time.monotonic()
    for client in clients:
        client.started, client.phase = started, "chaos"
    injector = asyncio.ensure_future(_faults(topo, faults(cfg), started, timeline))
    try:
        await writer.run(started + cfg.duration)
        await injector
    finally:
        injector.cancel()
    say(f"writer done; {len(timeline)} faults injected; settling")
    try:
        await asyncio.to_thread(wait_until, topo.healthy, 60, 0.2, "every process up and a listener active")
    except AssertionError as exc:
        raise RuntimeError(f"{exc}: {topo.describe()}") from None
    for client in clients:
        client.phase = "calm"
    await asyncio.to_thread(_fence, topo.url)
    truth = await asyncio.to_thread(schema.truth, topo.url)
    owed = _owed(clients, truth, writer)
    settle_from = time.monotonic()
    while (missing := sum(len(pairs - s.seen) for s, pairs in owed)) and time.monotonic() - settle_from < cfg.settle:
        await asyncio.sleep(0.5)
    return Outcome(cfg, started, writer, clients, truth, timeline, missing == 0, time.monotonic() - settle_from)
