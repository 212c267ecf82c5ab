"""Events → channel-layer groups. The only code that publishes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .envelope import Event
from .names import group_name


async def publish(layer: Any, events: Iterable[Event]) -> int:
    """Send each event to its channel's group, in order. Raises if the layer is unreachable."""
    count = 0
    for event in events:
        await layer.group_send(group_name(event["channel"]), event)
        count += 1
    return count
