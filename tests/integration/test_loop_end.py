"""What a runtime and its shared connection leave behind when their event loop ends.

A sync client, ``async_to_sync`` or a test runs a loop, uses pgevents on it, and closes it:
its callers must stop when cancelled, and the connection it opened must not outlive it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

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
