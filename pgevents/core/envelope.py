"""The wire format: notifications and log rows become the contract's event envelope, once.

Trigger events (durable and not) are encoded by PostgreSQL itself (``pgevents_frame()`` and
``pgevents_take_transient()``, created by the migrations), so the listener forwards the text
it reads without decoding it; these helpers build the same shape for plain NOTIFYs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypedDict

#: Channel the trigger function notifies. It carries wake-ups only, never an event: any role
#: that can connect can NOTIFY it, so a payload on it is a hint of where to look, not data.
INTERNAL_CHANNEL = "pgevents"
#: Wake-up payloads: new events in the log, new events in the transient (non-durable) table.
WAKE_LOG = ""
WAKE_TRANSIENT = "t"


class Event(TypedDict):
    """What travels from the listener to the consumers of one channel-layer group."""

    type: str  # "pgevents.event"
    channel: str
    id: int | None
    prev: int | None
    frame: str


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def now_iso() -> str:
    """UTC, microseconds, ``Z``: the same form PostgreSQL renders for durable events."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain_frame(channel: str, payload: str) -> str:
    """The frame for a plain ``NOTIFY channel, payload``: the raw payload, untouched."""
    return dumps(
        {
            "type": "event",
            "channel": channel,
            "id": None,
            "op": None,
            "schema": None,
            "table": None,
            "row": None,
            "old": None,
            "at": now_iso(),
            "payload": payload,
        }
    )


def layer_message(channel: str, frame: str, id: int | None = None, prev: int | None = None) -> Event:
    return {"type": "pgevents.event", "channel": channel, "id": id, "prev": prev, "frame": frame}


def control(type_: str, **fields: Any) -> str:
    """A server→client control message (``subscribed``, ``error``, ``reset``, ``leave``…)."""
    return dumps({"type": type_, **fields})
