"""Events → channel-layer groups. The only code that publishes.

Events go in per-channel batches (``pgevents.core.batch``): one layer message per channel per
round trip of the listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from pgevents.core.batch import batches
from pgevents.core.envelope import Event
from pgevents.core.names import group_name


async def publish(layer: Any, events: Iterable[Event], timeout: float) -> int:
    """Send ``events`` to their channels' groups, each channel's in order. Raises if the layer
    is unreachable or a send takes longer than ``timeout`` seconds. Returns the number of
    layer messages sent."""
    messages = batches(events)
    for message in messages:
        await asyncio.wait_for(layer.group_send(group_name(message["channel"]), message), timeout)
    return len(messages)
