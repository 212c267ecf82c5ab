"""Run the listener inside the ASGI server process (the zero-set-up topology).

With the in-memory channel layer a separate ``runlisten`` process could never reach the
server's consumers, so the server runs the listener itself, on its own event loop.
``apps.ready`` hands ``start`` to the server process's runtime, which calls it once per
event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import InMemoryChannelLayer

from pgevents import conf
from pgevents.capture.listener import Listener

logger = logging.getLogger(__name__)


def wanted(layer: Any) -> bool:
    setting = conf.get().embedded_listener
    return isinstance(layer, InMemoryChannelLayer) if setting is None else bool(setting)


def start(layer: Any) -> asyncio.Task[None] | None:
    """The embedded listener's task on the running loop, if the configuration asks for one."""
    if not wanted(layer):
        return None
    logger.info("starting the embedded listener")
    return asyncio.ensure_future(Listener(layer=layer, name="pgevents-embedded").run())
