"""System checks: a misconfigured project is told what is wrong before nothing updates.

Ids are stable; the README lists them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from . import conf
from .names import MAX_CHANNEL_BYTES


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    try:
        current = conf.get()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See the settings table in the README.", id="pgevents.E000")]
    databases = getattr(settings, "DATABASES", {})
    db = databases.get(current.database)
    if db is None:
        errors.append(
            Error(f"PGEVENTS['DATABASE'] is {current.database!r}, which is not in DATABASES.", id="pgevents.E001")
        )
    elif "postgresql" not in db.get("ENGINE", ""):
        errors.append(
            Error(
                f"Database {current.database!r} is not PostgreSQL ({db.get('ENGINE')}).",
                hint="pgevents needs PostgreSQL's LISTEN/NOTIFY and triggers.",
                id="pgevents.E001",
            )
        )
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    layer = layers.get(current.channel_layer)
    if layer is None:
        errors.append(
            Error(
                f"No channel layer {current.channel_layer!r} in CHANNEL_LAYERS.",
                hint="Configure channels_redis.core.RedisChannelLayer (or the in-memory layer for a single process).",
                id="pgevents.E002",
            )
        )
    elif layer.get("BACKEND", "").endswith("InMemoryChannelLayer") and current.embedded_listener is False:
        errors.append(
            Error(
                "The in-memory channel layer with EMBEDDED_LISTENER off: events from a separate "
                "runlisten process can never reach the server's clients.",
                hint="Use channels_redis, or leave EMBEDDED_LISTENER unset.",
                id="pgevents.E003",
            )
        )
    for pattern in current.channels:
        if not isinstance(pattern, str) or not pattern:
            errors.append(Error(f"CHANNELS entry {pattern!r} is not a non-empty string.", id="pgevents.E004"))
        elif len(pattern.encode()) > MAX_CHANNEL_BYTES:
            errors.append(
                Error(
                    f"Channel {pattern!r} is longer than PostgreSQL's {MAX_CHANNEL_BYTES}-byte identifier limit.",
                    hint="Shorten the channel name.",
                    id="pgevents.E004",
                )
            )
    errors.extend(_check_security(current))  # issue 6
    if not current.channels:
        errors.append(
            Warning(
                "PGEVENTS['CHANNELS'] is empty: every subscription will be refused.",
                hint="List the channels clients may subscribe to.",
                id="pgevents.W001",
            )
        )
    return errors


def _check_security(current: conf.Settings) -> list[CheckMessage]:
    """Hooks that cannot be imported, and an origin check that lets every site in."""
    from django.utils.module_loading import import_string

    found: list[CheckMessage] = []
    rule = current.authorize
    paths = [rule] if isinstance(rule, str) else list(rule.values()) if isinstance(rule, dict) else [None]
    for name, path in [("AUTHORIZE", p) for p in paths] + [("ROW_POLICY", current.row_policy)]:
        if name == "ROW_POLICY" and path is None:
            continue
        try:
            import_string(str(path))
        except ImportError as exc:
            found.append(
                Error(
                    f"PGEVENTS[{name!r}] {path!r} cannot be imported: {exc}",
                    hint="A dotted path to a function (AUTHORIZE may also map channel patterns to paths).",
                    id="pgevents.E005",
                )
            )
    origins = current.allowed_origins
    hosts = getattr(settings, "ALLOWED_HOSTS", [])
    if (origins is None and "*" in hosts) or (origins is not None and "*" in origins):
        found.append(
            Warning(
                "Every Origin may open a WebSocket: any site can subscribe on behalf of a logged-in visitor.",
                hint="List your sites in PGEVENTS['ALLOWED_ORIGINS'] (or narrow ALLOWED_HOSTS).",
                id="pgevents.W002",
            )
        )
    return found
