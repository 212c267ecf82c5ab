"""Pure rules for channel names and the channel-layer groups they map to, and the names
pgevents' own database sessions go by."""

from __future__ import annotations

import fnmatch
import hashlib
import re

#: ``application_name`` of listener sessions (``runlisten``, and the listener inside a server):
#: the first word, which may be followed by a space and more (where the session runs). SQL
#: matches them with ``split_part(application_name, ' ', 1) = ANY(...)``.
LISTENER_SESSIONS = ("pgevents-listener", "pgevents-embedded")

#: PostgreSQL cuts identifiers (LISTEN channel names) at 63 bytes.
MAX_CHANNEL_BYTES = 63

_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadChannel(ValueError):
    """A channel name no subscription or trigger may use."""


def validate_channel(name: object) -> str:
    """Return ``name`` if it can be a PostgreSQL NOTIFY channel, else raise ``BadChannel``."""
    if not isinstance(name, str):
        raise BadChannel("channel must be a string")
    if not name:
        raise BadChannel("channel must not be empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates: JSON allows them, PostgreSQL and UTF-8 do not
        raise BadChannel("channel is not valid Unicode") from None
    if size > MAX_CHANNEL_BYTES:
        raise BadChannel(f"channel is longer than {MAX_CHANNEL_BYTES} bytes")
    if _CONTROL.search(name):
        raise BadChannel("channel contains control characters")
    return name


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``patterns`` (exact names or fnmatch patterns), case-sensitive."""
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


#: The channel-layer group of pipeline messages (listener heartbeats) every server process
#: joins. Channel groups all start with ``pgevents.``, so no channel name can collide with it.
CONTROL_GROUP = "pgevents-control"


def group_name(channel: str) -> str:
    """The channel-layer group for ``channel``.

    Group names only allow ``[A-Za-z0-9_.-]`` and under 100 characters, while PostgreSQL
    channels allow anything; names outside the safe set map to a stable hash.
    """
    if _GROUP_SAFE.match(channel):
        return f"pgevents.{channel}"
    return "pgevents.h." + hashlib.sha256(channel.encode("utf-8")).hexdigest()[:40]


def is_listener_session(application_name: str) -> bool:
    """Whether a database session with this ``application_name`` is a pgevents listener."""
    return application_name.split(" ", 1)[0] in LISTENER_SESSIONS


def near_miss(channel: str, patterns: tuple[str, ...]) -> str:
    """Why ``channel`` is not admitted although a pattern looks meant for it (``orders.*`` for
    ``orders``), as a sentence; empty when nothing looks close."""
    for pattern in patterns:
        if pattern.endswith(".*") and pattern[:-2] == channel:
            return f"{pattern!r} admits {channel + '.something'!r}, not {channel!r} itself."
    return ""
