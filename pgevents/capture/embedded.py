"""Run the listener inside the ASGI server process (the zero-set-up topology).

With the in-memory channel layer a separate ``runlisten`` process could never reach the
server's consumers, so the server runs the listener itself, on its own event loop.
``apps.ready`` hands ``start`` to the server process's runtime, which calls it once per
event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from channels.layers import InMemoryChannelLayer

from pgevents import conf
from pgevents.capture.listener import Listener

logger = logging.getLogger(__name__)


def wanted(layer: Any) -> bool:
    setting = conf.get().embedded_listener
    return isinstance(layer, InMemoryChannelLayer) if setting is None else bool(setting)


class Embedded(NamedTuple):
    """The embedded listener and its task: the runtime closes the listener's connections
    itself if the loop is closed without the task having been cancelled and awaited."""

    task: asyncio.Task[None]
    listener: Listener

    def abandon(self) -> None:
        self.listener.abandon()


def start(layer: Any) -> Embedded | None:
    """The embedded listener on the running loop, if the configuration asks for one."""
    if not wanted(layer):
        return None
    logger.info("starting the embedded listener")
    listener = Listener(layer=layer, name="pgevents-embedded")
    return Embedded(asyncio.ensure_future(listener.run()), listener)
