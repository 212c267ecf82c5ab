"""The outbox: what waits for one client, bounded in bytes, in order."""

from __future__ import annotations

import asyncio

from pgevents.delivery.outbox import Outbox, Writer


class Buffered:
    """A socket view whose kernel side has taken nothing (the client stopped reading)."""

    def __init__(self, pending: int = 0) -> None:
        self.held = pending
        self.aborted = False

    def pending(self) -> int:
        return self.held

    def undelivered(self) -> int:
        return self.held

    def abort(self) -> None:
        self.aborted = True


def test_live_items_past_the_limit_are_refused() -> None:
    async def scenario() -> None:
        box = Outbox(100)
        assert box.offer("a" * 60, 60)
        assert box.offer("b" * 40, 40)
        assert not box.offer("c", 1)  # 101 bytes would wait
        assert await box.get() == "a" * 60
        assert box.offer("c", 1)
        box.put("goodbye")  # always queued
        assert [await box.get() for _ in range(3)] == ["b" * 40, "c", "goodbye"]

    asyncio.run(scenario())


def test_what_the_socket_holds_counts_and_one_large_item_goes_alone() -> None:
    socket = Buffered(90)
    box = Outbox(100, socket)
    assert not box.offer("x" * 20, 20)
    socket.held = 0
    assert box.offer("y" * 500, 500)  # larger than the limit, but nothing else waits


def test_replays_wait_for_room() -> None:
    async def scenario() -> None:
        box = Outbox(100)
        box.put("a" * 80, 80)
        waiter = asyncio.ensure_future(box.room())
        await asyncio.sleep(0)
        assert not waiter.done()
        await box.get()
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


def test_the_writer_sends_in_order_and_stops_after_the_close() -> None:
    async def scenario() -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        writer = Writer(Outbox(1000), send)
        for i in range(3):
            await writer.send({"type": "websocket.send", "text": str(i)})
        await writer.send({"type": "websocket.close", "code": 4408})
        await writer.send({"type": "websocket.send", "text": "after"})
        await asyncio.wait_for(writer.wait_closed(), 1)
        return sent

    sent = asyncio.run(scenario())
    assert [m.get("text", m["type"]) for m in sent] == ["0", "1", "2", "websocket.close"]
