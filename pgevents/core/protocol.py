"""Pure parsing of client → server WebSocket messages into typed commands.

Every malformed input becomes a ``ProtocolError`` with a stable ``code``; nothing here
raises anything else, whatever the input (a property-based test holds it to that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pgevents.core.filters import FilterError, compile_filter
from pgevents.core.names import BadChannel, validate_channel

MAX_FILTER_KEYS = 32
MAX_TOKEN_CHARS = 4096
#: Most shared regions one subscription may ask the server to render.
MAX_REGIONS = 16
#: Longest query string a subscription URL may carry (a filter and a token fit easily).
MAX_QUERY_BYTES = 16 * 1024
#: Most ``name=value`` pairs parsed from a query string.
MAX_QUERY_FIELDS = 16


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
    #: Signed shared-region tokens (``pgevents.signing.sign_region``): the server renders
    #: these regions' HTML once per event and sends it with the event.
    regions: tuple[str, ...] = ()


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


def parse_regions(value: object) -> tuple[str, ...]:
    """Shared-region tokens: a list of strings (a message) or comma-separated text (a URL)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or len(value) > MAX_REGIONS:
        raise ProtocolError("bad_request", f"regions must be a list of at most {MAX_REGIONS} tokens")
    if not all(isinstance(t, str) and t and len(t) <= MAX_TOKEN_CHARS and "," not in t for t in value):
        raise ProtocolError("bad_request", "regions must be non-empty token strings")
    return tuple(dict.fromkeys(value))


def decode_json(text: str, what: str) -> Any:
    """``text`` as JSON, or ``bad_request``: malformed and too deeply nested input alike
    (the decoder raises ``RecursionError`` past about a thousand levels)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", f"{what} is not valid JSON") from None


def parse_query(channel: object, query: bytes | str, last_event_id: str | None = None) -> Subscribe:
    """A subscription from a URL: the channel from its path; ``last_event_id``, ``filter``
    (JSON), ``token`` and ``regions`` (comma-separated) from its query string. ``last_event_id``, when given (SSE's
    ``Last-Event-ID`` header), wins over the query's. The last of repeated keys counts."""
    raw = query.decode("latin-1") if isinstance(query, bytes) else query
    if len(raw) > MAX_QUERY_BYTES:
        raise ProtocolError("bad_request", f"query string is longer than {MAX_QUERY_BYTES} bytes")
    try:
        pairs = parse_qsl(raw, max_num_fields=MAX_QUERY_FIELDS, encoding="utf-8", errors="replace")
    except ValueError:
        raise ProtocolError("bad_request", f"query string has more than {MAX_QUERY_FIELDS} fields") from None
    args = dict(pairs)
    raw_filter = args.get("filter")
    return Subscribe(
        channel_of(channel),
        parse_last_event_id(last_event_id or args.get("last_event_id")),
        parse_filter(None if raw_filter is None else decode_json(raw_filter, "filter")),
        parse_token(args.get("token")),
        parse_regions(args.get("regions")),
    )


def parse(text: str, max_bytes: int) -> Command:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError("too_large", f"message is larger than {max_bytes} bytes")
    data = decode_json(text, "message")
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
            parse_regions(data.get("regions")),
        )
    if kind == "unsubscribe":
        return Unsubscribe(channel_of(data.get("channel")))
    if kind == "ping":
        return Ping()
    raise ProtocolError("bad_request", "unknown message type (expected subscribe, unsubscribe or ping)")
