"""Run the listener inside the ASGI server process (the zero-set-up topology).

With the in-memory channel layer a separate ``runlisten`` process could never reach the
server's consumers, so the server runs the listener itself, on its own event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import InMemoryChannelLayer

from pgevents import conf

logger = logging.getLogger(__name__)

_started: dict[int, asyncio.Task[None]] = {}


def wanted(layer: Any) -> bool:
    setting = conf.get().embedded_listener
    return isinstance(layer, InMemoryChannelLayer) if setting is None else bool(setting)


def ensure_listener(layer: Any) -> None:
    """Start one listener task on this loop if the configuration asks for an embedded one."""
    if not wanted(layer):
        return
    loop = asyncio.get_running_loop()
    task = _started.get(id(loop))
    if task is not None and not task.done():
        return
    from pgevents.capture.listener import Listener

    logger.info("starting the embedded listener")
    _started[id(loop)] = asyncio.ensure_future(Listener(layer=layer, name="pgevents-embedded").run())
