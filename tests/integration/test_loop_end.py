"""What a runtime and its shared connection leave behind when their event loop ends.

A sync client, ``async_to_sync`` or a test runs a loop, uses pgevents on it, and closes it:
its callers must stop when cancelled, and the connection it opened must not outlive it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from pgevents.delivery import runtime
from pgevents.store.db import SharedConnection


async def _backend_pid(conn: psycopg.AsyncConnection[Any]) -> int:
    return int(conn.info.backend_pid)


async def _holds(conn: psycopg.AsyncConnection[Any], entered: asyncio.Event, release: asyncio.Event) -> None:
    entered.set()
    await release.wait()


def test_a_caller_cancelled_as_the_connection_is_handed_to_it_stops(db_url: str) -> None:
    """Cancel a queued caller at every step of the hand-over: each one it accepts must stop it."""

    async def body() -> list[int]:
        shared = SharedConnection("pgevents-test")
        accepted: list[int] = []
        try:
            for steps in range(12):
                entered, release = asyncio.Event(), asyncio.Event()
                holder = asyncio.ensure_future(shared.run(_holds, entered, release))
                await entered.wait()
                queued = asyncio.ensure_future(shared.run(_backend_pid))
                await asyncio.sleep(0)  # queued behind the holder
                release.set()
                for _ in range(steps):
                    await asyncio.sleep(0)
                if queued.cancel():
                    accepted.append(steps)
                    with pytest.raises(asyncio.CancelledError):
                        await queued  # not a result: the cancellation was not swallowed
                await holder
                # and the connection is free for the next caller
                assert isinstance(await shared.run(_backend_pid), int)
        finally:
            await shared.close()
        return accepted

    accepted = asyncio.run(body())
    assert accepted, "no cancellation was accepted: the race was not exercised"


@pytest.fixture
def no_collector() -> Iterator[None]:
    """A serving process freezes its objects and rarely collects (``collector``): what a dropped
    runtime leaves in reference cycles stays, so the test must see what the runtime closes
    itself, not what a collection happens to."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _gone(pg: psycopg.Connection[Any], pid: int) -> bool:
    """Whether backend ``pid`` has left ``pg_stat_activity``, waiting up to 10 s for it."""
    deadline = time.monotonic() + 10
    while True:
        row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row is not None and row[0] == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


async def _serve() -> int:
    """Use the loop's runtime as a subscription would; the backend pid of its shared connection."""
    pid: int = await runtime.current().connection.run(_backend_pid)
    return pid


async def _stop(rt: runtime.Runtime) -> None:
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    await rt.connection.close()


def _look_up_from_another_loop() -> None:
    async def body() -> None:
        await _stop(runtime.current())

    asyncio.run(body())


def _scrape() -> None:
    runtime.hubs()  # what the metrics and health endpoints ask, from any thread


@pytest.mark.parametrize("drop", [_look_up_from_another_loop, _scrape], ids=["current", "hubs"])
def test_a_runtime_dropped_with_its_closed_loop_closes_its_connection(
    pg: psycopg.Connection[Any], no_collector: None, drop: Callable[[], None]
) -> None:
    pid = asyncio.run(_serve())  # the loop is closed when asyncio.run returns
    row = pg.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    assert row == ("pgevents-replay",)
    drop()
    assert _gone(pg, pid), "the dropped runtime's replay connection is still open"
