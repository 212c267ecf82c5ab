"""The ``PGEVENTS`` settings dict: defaults in one place, read lazily, typed.

Every key is optional. Unknown keys raise ``ImproperlyConfigured`` so a typo is loud,
not silently ignored. The cached object is dropped when tests override ``PGEVENTS``.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

#: Column-name fragments treated as sensitive: never sent unless a watch includes them.
DEFAULT_SENSITIVE = ("password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "salt", "otp")


@dataclass(frozen=True)
class Settings:
    """Typed view of ``settings.PGEVENTS``; attribute names are the lower-cased keys."""

    #: Channels clients may subscribe to: exact names or ``fnmatch`` patterns. Deny by default.
    channels: tuple[str, ...] = ()
    #: Plain-NOTIFY channels ``runlisten`` LISTENs on and relays (``id: null``, the raw payload):
    #: opt-in, one by one. Any role that can connect to the database can NOTIFY any channel,
    #: so list only channels whose subscribers may receive whatever such a role sends.
    notify_channels: tuple[str, ...] = ()
    #: Dotted path of ``(user, channel, filter) -> bool``, or ``{pattern: dotted path}`` (first
    #: matching pattern decides; no match: forbidden). Runs after the CHANNELS check.
    authorize: str | dict[str, str] = "pgevents.policy.allow_all"
    #: ``{channel pattern: permission or list of permissions}`` for ``policy.require_permission``.
    permissions: dict[str, str | list[str]] = field(default_factory=dict)
    #: Dotted path of ``(user, channel) -> filter dict | None | False``: a row filter applied to
    #: every event of the user's subscriptions (and replays), on top of the client's own
    #: filter; ``None``: no restriction; ``False``: subscription refused.
    row_policy: str | None = None
    #: Channel patterns that refuse subscriptions without a valid signed token.
    signed_channels: tuple[str, ...] = ()
    #: Seconds a signed channel token stays valid.
    signature_max_age: float = 24 * 3600.0
    #: WebSocket ``Origin``s accepted (``"https://example.com"``; ``"https://.example.com"`` adds subdomains);
    #: ``None``: the hosts in ``ALLOWED_HOSTS``.
    allowed_origins: tuple[str, ...] | None = None
    #: Seconds between checks that a logged-in connection's session still exists (0: never).
    session_check_interval: float = 60.0
    #: Client messages per second a connection may send, sustained (token bucket).
    rate_limit: float = 20.0
    #: Client messages a connection may send in a burst.
    rate_burst: int = 200
    #: Bytes a WebSocket or SSE stream may have waiting to be written before it counts as not reading.
    max_send_buffer: int = 1024 * 1024
    #: Seconds a client cut off for not reading gets to read its goodbye (``too_slow``) before
    #: its TCP connection is dropped.
    close_grace: float = 30.0
    #: Django database alias the listener and the event log use.
    database: str = "default"
    #: Channels layer alias events travel through.
    channel_layer: str = "default"
    #: Whether watches log events durably unless they say otherwise.
    durable: bool = True
    #: Seconds the event log keeps events; resuming from older ids gets a ``reset``.
    retention: float = 7 * 24 * 3600.0
    #: Run the listener inside the ASGI process. ``None``: only with the in-memory layer.
    embedded_listener: bool | None = None
    #: Seconds between the listener's safety-net polls of the log (and liveness probes).
    poll_interval: float = 1.0
    #: Seconds a database round trip may take before the connection is treated as dead.
    query_timeout: float = 10.0
    #: Seconds between the active listener's heartbeats, which tell every server process (and
    #: through it every page) that a listener is active and how far behind it is.
    heartbeat_interval: float = 2.0
    #: Seconds without a heartbeat, or of listener lag, after which pages are told delivery is
    #: stalled (``{"type": "pipeline", ...}``); the indicator then stops saying ``live``.
    stall_timeout: float = 10.0
    #: Longest wait between reconnection attempts (seconds); backoff is jittered up to it.
    max_backoff: float = 10.0
    #: Events positioned and forwarded per sequencer round trip.
    batch_size: int = 500
    #: Most events one resume replays; further back than this gets a ``reset``.
    replay_limit: int = 10_000
    #: Largest client frame accepted (bytes).
    max_message_bytes: int = 64 * 1024
    #: Most channels one connection may subscribe to at once.
    max_subscriptions: int = 100
    #: Column-name fragments never sent unless a watch lists them in ``include``.
    sensitive_columns: tuple[str, ...] = DEFAULT_SENSITIVE
    #: Client addresses allowed to read ``/pgevents/metrics`` (it names channels).
    metrics_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    #: Set a serving process's garbage collector for many long-lived connections (freeze what
    #: exists at the first subscription, young threshold 10,000: see ``delivery.collector``);
    #: False leaves the collector as the project set it.
    tune_gc: bool = True
    #: Key of the PostgreSQL advisory lock that makes one listener active at a time.
    listener_lock: int = 7_270_561_517_906_176_001 % (2**63)


_TUPLE_KEYS = {"channels", "notify_channels", "sensitive_columns", "signed_channels", "allowed_origins", "metrics_ips"}


def _build(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    unknown = []
    for key, value in raw.items():
        name = key.lower()
        if name not in known:
            unknown.append(key)
            continue
        if name == "notify_channels" and value is None:
            value = ()  # what None meant before (every exact name in CHANNELS) is no longer offered
        if name in _TUPLE_KEYS and value is not None:
            if not isinstance(value, list | tuple | set | frozenset):
                raise ImproperlyConfigured(f"PGEVENTS[{key!r}] must be a list of strings, not {value!r}.")
            value = tuple(value)
        values[name] = _typed(key, value, _hints()[name])
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown PGEVENTS key(s): {', '.join(sorted(unknown))}. "
            f"Known keys: {', '.join(sorted(k.upper() for k in known))}."
        )
    return Settings(**values)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _typed(key: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits the field's type (ints are accepted for floats), else raise."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        if option is type(None):
            if value is None:
                return value
        elif typing.get_origin(option) is tuple:
            if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                return value
        elif option is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif option is Any or not isinstance(option, type) or isinstance(value, option):
            return value  # a plain class that matches, or a hint this check does not interpret
    names = {type(None): "None", str: "a string", bool: "True or False", int: "an integer", float: "a number"}
    expected = " or ".join(names.get(o, "a list of strings") for o in options)
    raise ImproperlyConfigured(f"PGEVENTS[{key!r}] must be {expected}, not {value!r}.")


_cached: Settings | None = None


def get() -> Settings:
    """The current settings, built once from ``settings.PGEVENTS``."""
    global _cached
    if _cached is None:
        from django.conf import settings

        _cached = _build(dict(getattr(settings, "PGEVENTS", {}) or {}))
    return _cached


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == "PGEVENTS":
        _cached = None
