"""Events → channel-layer groups. The only code that publishes.

Events go in per-channel batches (``pgevents.core.batch``): one layer message per channel per
round trip of the listener. Heartbeats go to the control group every server process joins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from pgevents.core import batch
from pgevents.core.envelope import Event
from pgevents.core.names import CONTROL_GROUP, group_name


async def publish(layer: Any, events: Iterable[Event], timeout: float) -> int:
    """Send ``events`` to their channels' groups, each channel's in order. Raises if the layer
    is unreachable or a send takes longer than ``timeout`` seconds. Returns the number of
    layer messages sent."""
    messages = batch.batches(events)
    for message in messages:
        async with asyncio.timeout(timeout):  # no task of its own per send, as wait_for would make
            await layer.group_send(group_name(message["channel"]), message)
    return len(messages)


async def heartbeat(layer: Any, listener: str, lag: float, timeout: float) -> None:
    """Tell every server process that ``listener`` is active and ``lag`` seconds behind
    (within ``timeout`` seconds, or raise, like ``publish``)."""
    async with asyncio.timeout(timeout):  # a scope, not wait_for, which can swallow a cancellation
        await layer.group_send(CONTROL_GROUP, batch.heartbeat(listener, lag))
