"""A sink wrapper that applies a subscription's row filter to every frame it sends.

Only filtered subscriptions are wrapped, so unfiltered ones keep writing the listener's
encoded frame untouched. The hub offers the same frame object to every subscription of a
channel, so the JSON is parsed once per event per process however many filtered
subscriptions see it (a one-slot cache keyed by the frame's identity; it holds a reference,
so the identity cannot be reused while cached). Replays go through the same sink, so they are
filtered exactly like live events.

Every event is decided: rows nested too deeply for ``json`` are decoded down to their
columns (``core.tolerant``), so the filter still judges them. An event that cannot be
decoded at all (never produced by pgevents itself) is not sent, and the client is told so
with an ``error`` (``filter_failed``) naming its id: never a silent skip.
"""

from __future__ import annotations

import logging
from typing import Any

from pgevents import metrics
from pgevents.core import tolerant
from pgevents.core.envelope import control, dumps
from pgevents.core.filters import RowFilter
from pgevents.delivery.subscription import Sink

logger = logging.getLogger(__name__)

_last: tuple[str, dict[str, Any] | None] | None = None


def parsed(frame: str) -> dict[str, Any] | None:
    """``frame`` as a dict (None if it is not a JSON object), parsed once per frame object."""
    global _last
    if _last is not None and _last[0] is frame:
        return _last[1]
    try:
        value = tolerant.loads(frame)
    except ValueError:
        value = None
    event = value if isinstance(value, dict) else None
    _last = (frame, event)
    return event


def leave_frame(event: dict[str, Any]) -> str:
    """Tells the client a row no longer matches: drop it from lists (``row`` is the old row)."""
    head = dumps(
        {
            "type": "leave",
            "channel": event.get("channel"),
            "id": event.get("id"),
            "schema": event.get("schema"),
            "table": event.get("table"),
        }
    )
    return f'{head[:-1]},"row":{tolerant.object_text(event.get("old"))},"at":{dumps(event.get("at"))}}}'


class FilteredSink:
    """Sends an event only if ``row_filter`` lets it through; a ``leave`` when a row exits."""

    __slots__ = ("channel", "inner", "row_filter")

    def __init__(self, inner: Sink, row_filter: RowFilter, channel: str | None = None) -> None:
        self.inner = inner
        self.row_filter = row_filter
        self.channel = channel

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        event = parsed(frame)
        if event is None:
            metrics.DROPPED.labels("undecodable").inc()
            logger.warning(
                "an event on %r (id %s) is not a JSON object; not sent to a filtered client", self.channel, id
            )
            message = "an event could not be checked against the filter and was not sent"
            await self.inner.send_control(
                control("error", code="filter_failed", channel=self.channel, id=id, message=message)
            )
            return
        decision = self.row_filter.decide(event)
        if decision == "send":
            await self.inner.send_event(frame, id, replay=replay)
        elif decision == "leave":
            await self.inner.send_event(leave_frame(event), id, replay=replay)

    async def send_control(self, frame: str) -> None:
        await self.inner.send_control(frame)
