"""The hub over channels' in-memory layer and the in-memory log: dispatch, membership, recovery."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.layers import InMemoryChannelLayer

from pgevents.capture import relay
from pgevents.core.envelope import Event
from pgevents.delivery.hub import Hub
from pgevents.delivery.memory import RecordingSink
from pgevents.delivery.pipeline import Pipeline
from pgevents.delivery.subscription import Subscription
from pgevents.store.memory import MemoryLog


async def subscribe(hub: Hub, channel: str, sink: RecordingSink) -> Subscription:
    sub = Subscription(channel, sink, hub.reader)
    await hub.join(sub)
    assert (await sink.next())["type"] == "subscribed"
    return sub


async def send(layer: Any, *events: Event) -> None:
    await relay.publish(layer, events, timeout=5)


def test_one_receive_per_process_reaches_each_subscriber_of_its_channel_only() -> None:
    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        direct, queued, other = RecordingSink(direct=True), RecordingSink(), RecordingSink()
        await subscribe(hub, "a", direct)
        await subscribe(hub, "a", queued)
        await subscribe(hub, "b", other)
        assert hub.count() == {"a": 2, "b": 1}
        await send(layer, *(log.commit("a") for _ in range(3)))
        assert [(await queued.next())["id"] for _ in range(3)] == [1, 2, 3]
        assert [(await direct.next())["id"] for _ in range(3)] == [1, 2, 3]
        assert len(direct.writes) == 1  # a run of consecutive events: one write per socket
        await send(layer, log.commit("b"))
        assert (await other.next())["id"] == 4  # the fence: "b" got nothing before its own event

    asyncio.run(body())


def test_leaving_the_last_subscription_leaves_the_group() -> None:
    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        first, second = RecordingSink(), RecordingSink()
        sub = await subscribe(hub, "a", first)
        await hub.leave(sub)
        assert hub.count() == {} and layer.groups.get("pgevents.a", {}) == {}
        await subscribe(hub, "a", second)
        await send(layer, log.commit("a"))
        assert (await second.next())["id"] == 1
        assert [m["type"] for m in first.received] == ["subscribed"]

    asyncio.run(body())


def test_a_gap_in_a_batch_is_repaired_for_every_subscriber() -> None:
    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        sinks = [RecordingSink(direct=True), RecordingSink()]
        for sink in sinks:
            await subscribe(hub, "a", sink)
        log.commit("a")  # never reaches the layer
        await send(layer, log.commit("a"), log.commit("a"))
        for sink in sinks:
            assert [(await sink.next())["id"] for _ in range(3)] == [1, 2, 3]

    asyncio.run(body())


class BreakingLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """The in-memory layer, whose next receive fails once when told to (Redis went away)."""

    breaks = 0

    async def receive(self, channel: str) -> Any:
        if self.breaks:
            self.breaks -= 1
            raise ConnectionError("layer unreachable")
        return await super().receive(channel)


def test_after_a_layer_failure_the_hub_rejoins_and_every_subscription_reads_the_log() -> None:
    async def body() -> None:
        layer, log = BreakingLayer(), MemoryLog()
        hub = Hub(layer, log)
        sink = RecordingSink()
        await subscribe(hub, "a", sink)
        log.commit("a")  # published while the layer was failing: lost
        layer.breaks = 1
        await send(layer, log.commit("a"))  # wakes the receive, which fails once
        assert [(await sink.next())["id"] for _ in range(2)] == [1, 2]
        assert not hub.layer_ok  # until a message is received again
        await send(layer, log.commit("a"))
        assert (await sink.next())["id"] == 3
        assert hub.layer_ok

    asyncio.run(body())


class BrokenSink(RecordingSink):
    """A client whose connection raises on every send."""

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        raise ConnectionResetError("gone")


def test_one_failing_subscriber_does_not_stop_the_others() -> None:
    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        broken, healthy = BrokenSink(), RecordingSink()
        await subscribe(hub, "a", broken)
        await subscribe(hub, "a", healthy)
        await send(layer, log.commit("a"))
        await send(layer, log.commit("a", op="DELETE"), {**log.commit("a"), "id": None, "prev": None})
        assert [(await healthy.next())["id"] for _ in range(3)] == [1, 2, 3]
        await hub.leave(Subscription("never-joined", RecordingSink(), log))  # nothing to leave

    asyncio.run(body())


def test_heartbeats_reach_the_pipeline_and_every_watcher_is_told_of_a_change_once() -> None:
    """The listener's heartbeat (the control group every hub joins) and the watchdog's look at
    the clock, over the in-memory layer: connections hear of a change once, and of nothing else."""

    async def body() -> None:
        now = [100.0]
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log, Pipeline(timeout=10, clock=lambda: now[0]))
        told: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def watcher(frame: str) -> None:
            await told.put(json.loads(frame))

        async def broken(frame: str) -> None:
            raise ConnectionError("socket closing")  # must not keep the other watcher uninformed

        hub.pipeline.watch(broken)
        unwatch = hub.pipeline.watch(watcher)
        await subscribe(hub, "a", RecordingSink())  # the hub runs, in the control group too
        now[0] += 10.5  # nothing heard since the hub started: the watchdog's next look says so
        await hub.pipeline.update(hub.layer_ok)
        assert await told.get() == {"type": "pipeline", "state": "no_listener", "lag": None}
        await relay.heartbeat(layer, "host:1", 0.0, timeout=5)
        assert await told.get() == {"type": "pipeline", "state": "ok", "lag": 0.0}
        await relay.heartbeat(layer, "host:1", 0.5, timeout=5)  # still ok: nobody is told
        await relay.heartbeat(layer, "host:1", 12.0, timeout=5)  # far behind
        assert await told.get() == {"type": "pipeline", "state": "stalled", "lag": 12.0}
        assert hub.pipeline.listener == "host:1"
        unwatch()
        assert hub.pipeline.watchers == {broken}

    asyncio.run(body())


def test_the_watchdog_notices_silence_without_any_message() -> None:
    async def body() -> None:
        now = [0.0]
        pipeline = Pipeline(timeout=0.4, clock=lambda: now[0])  # looks every 0.1 s
        told: asyncio.Queue[str] = asyncio.Queue()

        async def watcher(frame: str) -> None:
            await told.put(frame)

        pipeline.watch(watcher)
        watchdog = asyncio.ensure_future(pipeline.run(lambda: True))
        try:
            now[0] += 1.0
            assert json.loads(await asyncio.wait_for(told.get(), 10))["state"] == "no_listener"
        finally:
            watchdog.cancel()

    asyncio.run(body())


class BacklogLayer(InMemoryChannelLayer):
    """The in-memory layer with ``receive_many``, as ``pgevents.layers.PubSubChannelLayer`` has."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def receive_many(self, channel: str, limit: int) -> list[dict[str, Any]]:
        messages = [await self.receive(channel)]
        while len(messages) < limit:
            try:
                messages.append(await asyncio.wait_for(self.receive(channel), 0.01))
            except TimeoutError:
                break
        self.batches.append(len(messages))
        return messages


def test_a_backlog_goes_to_each_socket_in_one_write_in_order() -> None:
    """Layer messages already queued when the hub receives are merged per channel: a process
    that fell behind writes each socket's share of the backlog in one system call, so its
    cost per event falls as the backlog grows."""

    async def body() -> None:
        layer, log = BacklogLayer(), MemoryLog()
        hub = Hub(layer, log)
        sinks = [RecordingSink(direct=True) for _ in range(3)]
        plain = RecordingSink(direct=True)
        for sink in sinks:
            await subscribe(hub, "a", sink)
        await subscribe(hub, "n", plain)
        hub._task.cancel()  # type: ignore[union-attr]  # fall behind: nothing is received meanwhile
        for _ in range(5):  # one layer message per event, as at low rates
            await send(layer, log.commit("a"))
        for i in range(3):  # plain NOTIFY events: no ids, nothing to order
            await send(
                layer,
                {
                    "type": "pgevents.event",
                    "channel": "n",
                    "id": None,
                    "prev": None,
                    "frame": f'{{"type":"event","n":{i}}}',
                },
            )
        hub._ensure_running()
        for sink in sinks:
            assert [(await sink.next())["id"] for _ in range(5)] == [1, 2, 3, 4, 5]
            assert len(sink.writes) == 1
        assert [(await plain.next())["n"] for _ in range(3)] == [0, 1, 2] and len(plain.writes) == 1
        assert layer.batches == [8]
        await send(layer, log.commit("a"))  # caught up: one event, one write again
        for sink in sinks:
            assert (await sink.next())["id"] == 6 and len(sink.writes) == 2

    asyncio.run(body())


def test_a_merged_backlog_with_a_gap_or_an_overlap_is_delivered_once_in_order() -> None:
    async def body() -> None:
        layer, log = BacklogLayer(), MemoryLog()
        hub = Hub(layer, log)
        ahead, fresh = RecordingSink(direct=True), RecordingSink(direct=True)
        await subscribe(hub, "a", ahead)
        await subscribe(hub, "a", fresh)
        hub._task.cancel()  # type: ignore[union-attr]
        first = log.commit("a")
        ahead_sub = next(s for s in hub.subscriptions["a"] if s.sink is ahead)
        ahead_sub.last_id = first["id"]  # this one already has event 1 (a replay overlap)
        await send(layer, first)
        log.commit("a")  # never reaches the layer: a gap in the merged run
        await send(layer, log.commit("a"), log.commit("a"))
        hub._ensure_running()
        assert [(await fresh.next())["id"] for _ in range(4)] == [1, 2, 3, 4]
        assert [(await ahead.next())["id"] for _ in range(3)] == [2, 3, 4]

    asyncio.run(body())


def test_a_merged_backlog_of_mixed_events_goes_out_one_write_per_run() -> None:
    """Durable events, then plain ones (no ids), then durable ones again: three runs, three
    writes per socket, in order (not one write per event)."""

    async def body() -> None:
        layer, log = BacklogLayer(), MemoryLog()
        hub = Hub(layer, log)
        sink = RecordingSink(direct=True)
        await subscribe(hub, "a", sink)
        hub._task.cancel()  # type: ignore[union-attr]
        plain = {"type": "pgevents.event", "channel": "a", "id": None, "prev": None, "frame": '{"type":"event"}'}
        await send(layer, log.commit("a"), log.commit("a"))
        await send(layer, plain)
        await send(layer, plain)
        await send(layer, log.commit("a"), log.commit("a"))
        hub._ensure_running()
        assert [(await sink.next()).get("id") for _ in range(6)] == [1, 2, None, None, 3, 4]
        assert len(sink.writes) == 3

    asyncio.run(body())


class BrokenSocket(RecordingSink):
    """A direct sink whose write fails unexpectedly."""

    def _write_nowait(self, data: bytes) -> bool:
        raise RuntimeError("this socket is broken")


def test_one_socket_failing_in_the_fan_out_leaves_the_others_their_events() -> None:
    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        sinks = [RecordingSink(direct=True), BrokenSocket(direct=True), RecordingSink(direct=True)]
        for sink in sinks:
            await subscribe(hub, "a", sink)
        await send(layer, log.commit("a"), log.commit("a"))
        await send(layer, log.commit("a"))
        for sink in (sinks[0], sinks[2]):
            assert [(await sink.next())["id"] for _ in range(3)] == [1, 2, 3]
        assert sinks[1].received[1:] == []

    asyncio.run(body())


def test_the_fan_out_writes_only_live_in_order_sockets_directly() -> None:
    """Subscriptions that are behind, ahead or catching up take the general path, which
    repairs, dedupes or buffers; the in-order ones get the run in one write."""

    async def body() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        hub = Hub(layer, log)
        first = log.commit("a")
        in_order, ahead, plain = RecordingSink(direct=True), RecordingSink(direct=True), RecordingSink()
        for sink in (in_order, ahead, plain):
            await subscribe(hub, "a", sink)
        subs = {s.sink: s for s in hub.subscriptions["a"]}
        subs[ahead].last_id = first["id"] + 1  # as if it had already got the next event
        second, third = log.commit("a"), log.commit("a")
        await send(layer, second, third)
        assert [(await in_order.next())["id"] for _ in range(2)] == [2, 3]
        assert [m["via"] for m in in_order.received[1:]] == ["direct", "direct"] and len(in_order.writes) == 1
        assert (await ahead.next())["id"] == 3  # 2 dropped as already delivered
        assert [(await plain.next())["id"] for _ in range(2)] == [2, 3]
        assert hub.delivered == 2 + 1 + 2  # the sinks without a direct write counted too

    asyncio.run(body())
