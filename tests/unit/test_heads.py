"""SharedHeads: new subscriptions of a channel share head queries, never an earlier one's answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgevents.delivery.heads import SharedHeads
from pgevents.store.log import Replay


class GatedLog:
    """A log whose head query reads the head when it starts and answers when let through."""

    def __init__(self) -> None:
        self.newest: dict[str, int] = {}
        self.started: list[str] = []
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def head(self, channel: str) -> int:
        seen = self.newest.get(channel, 0)  # the query's snapshot: taken as it starts
        self.started.append(channel)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return seen

    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        return Replay([], more=False)

    async def run(self, fn: Any, *args: Any) -> Any:
        return fn, args


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_askers_during_a_query_share_the_next_one_which_starts_after_they_asked() -> None:
    async def body() -> None:
        log = GatedLog()
        heads = SharedHeads(log)
        first = asyncio.ensure_future(heads.head("a"))
        await settle()
        assert log.started == ["a"]
        log.newest["a"] = 7  # committed while the first query runs: later askers must see it
        later = [asyncio.ensure_future(heads.head("a")) for _ in range(50)]
        other = asyncio.ensure_future(heads.head("b"))
        await settle()
        log.gate.set()
        assert await first == 0
        assert await asyncio.gather(*later) == [7] * 50
        assert await other == 0
        assert heads.queries == 3 and sorted(log.started) == ["a", "a", "b"]

    asyncio.run(body())


def test_a_failed_query_fails_every_waiter_and_the_next_asker_queries_again() -> None:
    async def body() -> None:
        log = GatedLog()
        heads = SharedHeads(log)
        log.fail = ConnectionError("database down")
        waiters = [asyncio.ensure_future(heads.head("a")) for _ in range(3)]
        await settle()
        log.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        log.fail = None
        log.newest["a"] = 3
        assert await heads.head("a") == 3
        assert heads.queries == 2

    asyncio.run(body())


def test_a_waiter_that_gives_up_leaves_the_others_their_answer() -> None:
    async def body() -> None:
        log = GatedLog()
        heads = SharedHeads(log)
        quitter, stayer = asyncio.ensure_future(heads.head("a")), asyncio.ensure_future(heads.head("a"))
        await settle()
        quitter.cancel()
        await settle()
        log.newest["a"] = 1
        log.gate.set()
        assert await stayer == 0
        with pytest.raises(asyncio.CancelledError):
            await quitter

    asyncio.run(body())


def test_waiters_are_not_left_hanging_when_the_query_task_is_cancelled() -> None:
    async def body() -> None:
        log = GatedLog()
        heads = SharedHeads(log)
        running = asyncio.ensure_future(heads.head("a"))
        await settle()
        queued = asyncio.ensure_future(heads.head("a"))  # waits for the next query
        await settle()
        for task in list(heads._tasks):
            task.cancel()
        for waiter in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await waiter

    asyncio.run(body())


def test_other_reads_pass_through() -> None:
    async def body() -> None:
        log = GatedLog()
        heads = SharedHeads(log)
        assert await heads.read_after("a", 0, 10) == Replay([], more=False)
        assert await heads.run(len, "x") == (len, ("x",))

    asyncio.run(body())
