"""Channel-layer messages: events travel in per-channel batches; heartbeats say a listener is active (pure).

The listener sends one ``pgevents.batch`` message per channel per round trip, holding that
channel's events in id order; each server process's hub unpacks it. A channel-layer send
costs a few Redis round trips whatever its size, so batching is what lets one listener keep
up with a writer at full speed; at low rates a batch holds one event and costs what it did
before. Batches are capped in bytes so a burst of large rows never becomes one huge message.

The active listener also sends a ``pgevents.heartbeat`` to the control group
(``core.names.CONTROL_GROUP``) every ``HEARTBEAT_INTERVAL``, with how far behind it is; each
hub reads it into its process's ``delivery.pipeline.Pipeline``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgevents.core.envelope import Event

#: Largest batch (sum of frame lengths); a single larger event still goes, alone.
BATCH_BYTES = 256 * 1024
BATCH_TYPE = "pgevents.batch"
HEARTBEAT_TYPE = "pgevents.heartbeat"


def batches(events: Iterable[Event]) -> list[dict[str, Any]]:
    """Group ``events`` by channel (keeping their order) into byte-capped batch messages."""
    out: list[dict[str, Any]] = []
    open_: dict[str, tuple[list[list[Any]], list[int]]] = {}
    for event in events:
        channel = event["channel"]
        entry = open_.get(channel)
        size = len(event["frame"])
        if entry is None or (entry[1][0] + size > BATCH_BYTES and entry[0]):
            items: list[list[Any]] = []
            entry = open_[channel] = (items, [0])
            out.append({"type": BATCH_TYPE, "channel": channel, "events": items})
        entry[0].append([event["id"], event["prev"], event["frame"]])
        entry[1][0] += size
    return out


def unpack(message: dict[str, Any]) -> list[Event]:
    """The events of a layer message: a batch, or a single ``pgevents.event``."""
    if message.get("type") != BATCH_TYPE:
        return [message]  # type: ignore[list-item]
    channel = message["channel"]
    return [
        {"type": "pgevents.event", "channel": channel, "id": id_, "prev": prev, "frame": frame}
        for id_, prev, frame in message["events"]
    ]


def heartbeat(listener: str, lag: float) -> dict[str, Any]:
    """The message saying ``listener`` (``host:pid``) is active and ``lag`` seconds behind."""
    return {"type": HEARTBEAT_TYPE, "listener": listener, "lag": round(lag, 3)}


def is_heartbeat(message: dict[str, Any]) -> bool:
    return message.get("type") == HEARTBEAT_TYPE
