"""The ``PGEVENTS`` settings dict: defaults in one place, read lazily, typed.

Every key is optional. Unknown keys raise ``ImproperlyConfigured`` so a typo is loud,
not silently ignored. The cached object is dropped when tests override ``PGEVENTS``.
"""

from __future__ import annotations

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
    #: Plain-NOTIFY channels ``runlisten`` LISTENs on. ``None``: every exact name in CHANNELS.
    notify_channels: tuple[str, ...] | None = None
    #: Dotted path of ``(user, channel, filter) -> bool``; runs after the CHANNELS check.
    authorize: str = "pgevents.policy.allow_all"
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
    #: Key of the PostgreSQL advisory lock that makes one listener active at a time.
    listener_lock: int = 7_270_561_517_906_176_001 % (2**63)

    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def exact_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if not any(ch in c for ch in "*?["))

    @property
    def listen_channels(self) -> tuple[str, ...]:
        return self.exact_channels if self.notify_channels is None else self.notify_channels


_TUPLE_KEYS = {"channels", "notify_channels", "sensitive_columns", "metrics_ips"}


def _build(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    unknown = []
    for key, value in raw.items():
        name = key.lower()
        if name not in known:
            unknown.append(key)
            continue
        if name in _TUPLE_KEYS and value is not None:
            if isinstance(value, str):
                raise ImproperlyConfigured(f"PGEVENTS[{key!r}] must be a list of strings, not a string.")
            value = tuple(value)
        values[name] = value
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown PGEVENTS key(s): {', '.join(sorted(unknown))}. "
            f"Known keys: {', '.join(sorted(k.upper() for k in known))}."
        )
    return Settings(**values)


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
