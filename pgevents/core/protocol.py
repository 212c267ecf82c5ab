"""Pure parsing of client → server WebSocket messages into typed commands.

Every malformed input becomes a ``ProtocolError`` with a stable ``code``; nothing here
raises anything else, whatever the input (a property-based test holds it to that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pgevents.core.filters import FilterError, compile_filter
from pgevents.core.names import BadChannel, validate_channel

MAX_FILTER_KEYS = 32
MAX_TOKEN_CHARS = 4096


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Subscribe:
    channel: str
    last_event_id: int | None = None
    filter: dict[str, Any] | None = None
    #: A signed channel token (``pgevents.signing``), when the page was given one.
    token: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True)
class Ping:
    pass


Command = Subscribe | Unsubscribe | Ping


def parse_last_event_id(value: object) -> int | None:
    """``None`` or a non-negative integer (strings of digits allowed, as in query strings)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ProtocolError("bad_request", "last_event_id must be a non-negative integer")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or value < 0 or value >= 2**63:
        raise ProtocolError("bad_request", "last_event_id must be a non-negative integer")
    return value


def channel_of(value: object) -> str:
    try:
        return validate_channel(value)
    except BadChannel as exc:
        raise ProtocolError("bad_request", f"invalid channel: {exc}") from None


def parse_filter(value: object) -> dict[str, Any] | None:
    """``None`` or a filter that follows the grammar in ``pgevents.core.filters``."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_FILTER_KEYS:
        raise ProtocolError("bad_request", f"filter must be an object with at most {MAX_FILTER_KEYS} keys")
    try:
        compile_filter(value)
    except FilterError as exc:
        raise ProtocolError("bad_request", f"invalid filter: {exc}") from None
    return value


def parse_token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_CHARS:
        raise ProtocolError("bad_request", "token must be a non-empty string")
    return value


def parse(text: str, max_bytes: int) -> Command:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError("too_large", f"message is larger than {max_bytes} bytes")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_request", "message needs a string 'type'")
    if kind == "subscribe":
        return Subscribe(
            channel_of(data.get("channel")),
            parse_last_event_id(data.get("last_event_id")),
            parse_filter(data.get("filter")),
            parse_token(data.get("token")),
        )
    if kind == "unsubscribe":
        return Unsubscribe(channel_of(data.get("channel")))
    if kind == "ping":
        return Ping()
    raise ProtocolError("bad_request", "unknown message type (expected subscribe, unsubscribe or ping)")
