"""The wire format: notifications and log rows become the contract's event envelope, once.

Durable events are encoded by PostgreSQL itself (``pgevents_frame()``, created by the
migrations), so the listener forwards the text it reads; these helpers build the same shape
for plain NOTIFYs and for non-durable trigger notifications.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypedDict

#: Channel the trigger function notifies: a wake-up (durable) or a compact envelope.
INTERNAL_CHANNEL = "pgevents"


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


def trigger_frame(payload: str) -> tuple[str, str] | None:
    """Decode a non-durable trigger notification into ``(channel, frame)``; None if malformed."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("channel"), str):
        return None
    frame = {
        "type": "event",
        "channel": data["channel"],
        "id": None,
        "op": data.get("op"),
        "schema": data.get("schema"),
        "table": data.get("table"),
        "row": data.get("row"),
        "old": data.get("old"),
        "at": data.get("at"),
    }
    if data.get("truncated"):
        frame["truncated"] = True
    return data["channel"], dumps(frame)


def layer_message(channel: str, frame: str, id: int | None = None, prev: int | None = None) -> Event:
    return {"type": "pgevents.event", "channel": channel, "id": id, "prev": prev, "frame": frame}


def control(type_: str, **fields: Any) -> str:
    """A server→client control message (``subscribed``, ``error``, ``reset``, ``leave``…)."""
    return dumps({"type": type_, **fields})
