"""Scale-out on real PostgreSQL and Redis: two daphne processes behind one Redis, two
``runlisten`` processes on one database (one active, one standing by).

Clients on both servers receive every event; the active listener is killed with SIGKILL
mid-stream while the writer keeps writing; the standby takes over and every client ends
with every event exactly once, in id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import ROOT, Client, Process, base_env, free_port, run, wait_until

EVENTS = 300
RATE = 100.0  # rows per second, one per transaction: the kill lands mid-stream
LOGS = ROOT / ".pgevents" / "test-logs"


@contextlib.contextmanager
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()


def _daphne(env: dict[str, str], port: int) -> Process:
    return Process(
        f"daphne-{port}",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "demo_project.asgi:application"],
        env,
        LOGS,
    )


def _port_open(port: int) -> bool:
    import socket

    with contextlib.closing(socket.socket()) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _write(url: str, count: int, stop: threading.Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.monotonic()
        for i in range(count):
            delay = t0 + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.execute("INSERT INTO people (name, age) VALUES (%s, %s)", (f"scale-{i}", i))
            if stop.is_set():
                return


@pytest.mark.fault
def test_two_servers_two_listeners_failover_loses_nothing(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    env = base_env(isolated_db, PGEVENTS_REDIS_PREFIX=f"pgevents-test-scale-{os.getpid()}-{time.monotonic_ns()}")
    ports = [free_port(), free_port()]
    with processes() as procs:
        procs += [_daphne(env, port) for port in ports]
        active = Process("runlisten-a", [sys.executable, "manage.py", "runlisten"], env, LOGS)
        procs.append(active)
        wait_until(lambda: "listener active" in active.output(), 30, what="the first listener to become active")
        standby = Process("runlisten-b", [sys.executable, "manage.py", "runlisten"], env, LOGS)
        procs.append(standby)
        wait_until(lambda: "standing by" in standby.output(), 30, what="the second listener to stand by")
        for port in ports:
            wait_until(lambda port=port: _port_open(port), 30, what=f"daphne on {port}")

        async def scenario() -> list[list[int]]:
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(Client.connect(f"ws://127.0.0.1:{port}/ws/pgevents/people/"))
                    for port in ports
                    for _ in range(2)
                ]
                for client in clients:
                    await client.expect("subscribed")
                stop = threading.Event()
                writer = asyncio.ensure_future(asyncio.to_thread(_write, isolated_db, EVENTS, stop))
                try:
                    # Every client on both servers is receiving before the kill.
                    firsts = await asyncio.gather(*(c.events(20) for c in clients))
                    assert "listener active" not in standby.output()  # exactly one forwards at a time
                    active.signal(signal.SIGKILL)
                    await asyncio.to_thread(
                        wait_until, lambda: "listener active" in standby.output(), 30, 0.05, "the standby to take over"
                    )
                    assert not writer.done()  # the kill landed mid-stream
                    await writer
                    rests = await asyncio.gather(*(c.events(EVENTS - 20, timeout=60) for c in clients))
                    iso_pg.execute("INSERT INTO people (name) VALUES ('scale-fence')")
                    for client in clients:  # and nothing more before it: no duplicates
                        (fence,) = await client.events(1)
                        assert fence["row"]["name"] == "scale-fence"
                finally:
                    stop.set()
                    with contextlib.suppress(Exception):
                        await writer
                return [[e["id"] for e in a + b] for a, b in zip(firsts, rests, strict=True)]

        received = run(scenario())

    ids = [
        row[0]
        for row in iso_pg.execute(
            "SELECT id FROM pgevents_event WHERE channel = 'people' AND \"row\"->>'name' <> 'scale-fence' ORDER BY id"
        )
    ]
    assert len(ids) == EVENTS
    for got in received:
        assert got == ids  # every event, exactly once, in id order, on both servers
