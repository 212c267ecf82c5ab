"""What ``runlisten`` checks and says before it reports ready.

The channel layer is checked with a real round trip (a message sent to a fresh channel and
received back) on the loop the listener will use, so a wrong Redis URL fails at start with
the address in the message, instead of at the first event. The ready line names the
database, the layer, the channels and the role, so one glance at the log says what runs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

#: Seconds the layer has to answer the start-up round trip.
LAYER_TIMEOUT = 5.0


class LayerUnavailable(Exception):
    """The channel layer did not answer the start-up round trip."""


async def check_layer(layer: Any, timeout: float = LAYER_TIMEOUT) -> None:
    """Send a message to a new channel of ``layer`` and receive it, within ``timeout``."""
    token = uuid.uuid4().hex
    try:
        # Timeout scopes, not wait_for (which on Python 3.11 can swallow a cancellation that
        # arrives as the call it bounds completes): each step has ``timeout`` of its own.
        async with asyncio.timeout(timeout):
            channel = await layer.new_channel("pgevents.check.")
        async with asyncio.timeout(timeout):
            await layer.send(channel, {"type": "pgevents.check", "token": token})
        async with asyncio.timeout(timeout):
            message = await layer.receive(channel)
    except TimeoutError:
        raise LayerUnavailable(f"no answer within {timeout:.0f}s") from None
    except Exception as exc:  # whatever the layer's client raises (refused, DNS, auth…)
        raise LayerUnavailable(f"{type(exc).__name__}: {str(exc).rstrip('.')}") from None
    if message.get("token") != token:
        raise LayerUnavailable(f"the round trip returned another message ({message.get('type')!r})")


def layer_description(alias: str, config: dict[str, Any] | None) -> str:
    """``"default" (channels_redis.core.RedisChannelLayer at redis://host:6379/0)``, passwords hidden."""
    config = config or {}
    backend = config.get("BACKEND", "?")
    hosts = (config.get("CONFIG") or {}).get("hosts") or []
    where = ", ".join(_host(h) for h in hosts)
    return f"{alias!r} ({backend}{' at ' + where if where else ''})"


def _host(host: Any) -> str:
    if isinstance(host, dict):
        host = host.get("address", host.get("host", "?"))
    if isinstance(host, list | tuple):
        return ":".join(str(part) for part in host)
    parts = urlsplit(str(host))
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return str(host)


def database_description(alias: str, conn: psycopg.AsyncConnection[Any]) -> str:
    """``"shop" on 127.0.0.1:5432 as postgres (alias "default")``, from the live session."""
    info = conn.info
    host = info.host if not info.host.startswith("/") else f"socket {info.host}"
    return f"{info.dbname!r} on {host}:{info.port} as {info.user} (alias {alias!r})"


def ready_line(role: str, database: str, layer: str, channels: tuple[str, ...], process: str) -> str:
    listen = ", ".join(channels) if channels else "none besides the event log"
    if role == "standby":
        role = "standby (another listener is active; this one takes over when it stops)"
    return (
        f"runlisten ready, role {role}. Database {database}; channel layer {layer}, checked; "
        f"plain NOTIFY channels: {listen}; process {process}."
    )
