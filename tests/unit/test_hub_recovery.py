"""How the hub recovers from its channel layer: a ``LayerReset`` (the layer works, but
messages may be gone) is repaired at once; a failing layer is retried with backoff.

The layer is Channels' in-memory one with failures injected into ``receive()``; the hub's
pause is recorded instead of slept, so the policy is checked without timing anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer

from pgevents.core.envelope import layer_message
from pgevents.core.names import group_name
from pgevents.delivery.hub import Hub, LayerReset
from pgevents.store.memory import MemoryLog


class FailingLayer(InMemoryChannelLayer):
    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures

    async def receive(self, channel: str) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        return await super().receive(channel)


class RecordingHub(Hub):
    def __init__(self, layer: Any) -> None:
        super().__init__(layer, MemoryLog())
        self.pauses: list[float] = []

    async def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


class Subscriber:
    """Stands in for a subscription: counts re-syncs, notes live events."""

    channel = "c"
    direct = None

    def __init__(self) -> None:
        self.resyncs = 0
        self.live = asyncio.Event()

    def resync(self) -> None:
        self.resyncs += 1

    def offer_run_nowait(self, first: Any, last: Any, wire: bytes) -> bool:
        self.live.set()
        return True

    def offer_nowait(self, event: Any, wire: bytes) -> int:
        self.live.set()
        return 1


async def _recover(failures: list[Exception]) -> tuple[RecordingHub, Subscriber]:
    layer = FailingLayer(failures)
    hub = RecordingHub(layer)
    sub = Subscriber()
    hub.subscriptions["c"] = {sub}  # type: ignore[arg-type]
    task = asyncio.ensure_future(hub._run())
    try:
        while layer.failures or not hub._joined:  # the failures are used up and the group re-joined
            await asyncio.sleep(0.01)
        await layer.group_send(group_name("c"), dict(layer_message("c", '{"type":"event"}', 1)))
        await asyncio.wait_for(sub.live.wait(), 10)
    finally:
        task.cancel()
    return hub, sub


def test_a_layer_reset_is_repaired_at_once_every_time() -> None:
    hub, sub = asyncio.run(_recover([LayerReset("reconnected"), LayerReset("overflow"), LayerReset("again")]))
    assert sub.resyncs == 3  # each reset: re-join and check the log
    assert hub.pauses == []  # and no backoff before it


def test_a_failing_layer_is_retried_with_growing_backoff() -> None:
    hub, sub = asyncio.run(_recover([ConnectionError("down"), ConnectionError("down"), ConnectionError("down")]))
    assert sub.resyncs == 3
    assert len(hub.pauses) == 3 and hub.pauses[0] <= hub.pauses[1] <= hub.pauses[2]
