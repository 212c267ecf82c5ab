"""A sink wrapper that applies a subscription's row filter to every frame it sends.

Only filtered subscriptions are wrapped, so unfiltered ones keep writing the listener's
encoded frame untouched. The hub offers the same frame object to every subscription of a
channel, so the JSON is parsed once per event per process however many filtered
subscriptions see it (a one-slot cache keyed by the frame's identity; it holds a reference,
so the identity cannot be reused while cached). Replays go through the same sink, so they are
filtered exactly like live events.
"""

from __future__ import annotations

import json
from typing import Any

from pgevents.core.envelope import control
from pgevents.core.filters import RowFilter
from pgevents.delivery.subscription import Sink

_last: tuple[str, dict[str, Any] | None] | None = None


def parsed(frame: str) -> dict[str, Any] | None:
    """``frame`` as a dict (None if it is not a JSON object), parsed once per frame object."""
    global _last
    if _last is not None and _last[0] is frame:
        return _last[1]
    try:
        value = json.loads(frame)
    except ValueError:
        value = None
    event = value if isinstance(value, dict) else None
    _last = (frame, event)
    return event


def leave_frame(event: dict[str, Any]) -> str:
    """Tells the client a row no longer matches: drop it from lists (``row`` is the old row)."""
    return control(
        "leave",
        channel=event.get("channel"),
        id=event.get("id"),
        schema=event.get("schema"),
        table=event.get("table"),
        row=event.get("old"),
        at=event.get("at"),
    )


class FilteredSink:
    """Sends an event only if ``row_filter`` lets it through; a ``leave`` when a row exits."""

    __slots__ = ("inner", "row_filter")

    def __init__(self, inner: Sink, row_filter: RowFilter) -> None:
        self.inner = inner
        self.row_filter = row_filter

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        event = parsed(frame)
        if event is None:
            return
        decision = self.row_filter.decide(event)
        if decision == "send":
            await self.inner.send_event(frame, id, replay=replay)
        elif decision == "leave":
            await self.inner.send_event(leave_frame(event), id, replay=replay)

    async def send_control(self, frame: str) -> None:
        await self.inner.send_control(frame)
