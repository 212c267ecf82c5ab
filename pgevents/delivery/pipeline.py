"""Is anything feeding this server? Listener heartbeats → ``ok`` / ``stalled`` / ``no_listener``.

The active listener sends a heartbeat through the channel layer every ``HEARTBEAT_INTERVAL``
with how long it has been behind. Each server process's hub hears it (it joins the control
group) and hands it to the process's one ``Pipeline``: when no heartbeat arrived for
``STALL_TIMEOUT`` (no listener runs, or its messages do not get here), when the listener
reports more lag than that, or when this process has not been able to receive from the
channel layer for that long, the state changes and every connection of the process is told
once, with a ``pipeline`` message; again when it recovers. Pages show it instead of ``live``
(see ``pgevents.js``). A new connection is told only when the state is not ``ok``, so clients
may treat "no ``pipeline`` message" as ``ok``.

The process's runtime runs the watchdog (``run``), which notices silence and a lasting
channel-layer outage between heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pgevents.core.envelope import control

logger = logging.getLogger(__name__)

State = Literal["ok", "stalled", "no_listener"]
Watcher = Callable[[str], Awaitable[None]]


class Pipeline:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        #: Until a first heartbeat, the time the process started listening: a grace period.
        self.heard_at = clock()
        self.lag: float | None = None
        self.listener: str | None = None
        #: Since when this process cannot receive from the channel layer (None: it can).
        self.layer_down_since: float | None = None
        self.state: State = "ok"
        self.watchers: set[Watcher] = set()

    def heard(self, message: dict[str, Any]) -> None:
        """A heartbeat: ``{"listener": "host:pid", "lag": seconds}``."""
        self.heard_at = self.clock()
        self.listener = str(message.get("listener"))
        lag = message.get("lag")
        self.lag = float(lag) if isinstance(lag, int | float) else None

    def evaluate(self, layer_ok: bool = True) -> bool:
        """Recompute the state; True when it changed."""
        now = self.clock()
        silent = now - self.heard_at
        if layer_ok:
            self.layer_down_since = None
        elif self.layer_down_since is None:
            self.layer_down_since = now
        layer_down = self.layer_down_since is not None and now - self.layer_down_since > self.timeout
        state: State
        if silent > self.timeout or layer_down:
            # Heartbeats cannot arrive while this process cannot receive: then the layer is the
            # problem, not the listener. A short blip is repaired from the log, unnoticed.
            state = "no_listener" if layer_ok else "stalled"
        elif self.lag is not None and self.lag > self.timeout:
            state = "stalled"
        else:
            state = "ok"
        if state == self.state:
            return False
        logger.log(
            logging.INFO if state == "ok" else logging.WARNING,
            "delivery %s (listener %s, last heard %.1fs ago, lag %s)",
            {"ok": "is flowing again", "stalled": "is stalled", "no_listener": "has no active listener"}[state],
            self.listener or "none yet",
            silent,
            "-" if self.lag is None else f"{self.lag:.1f}s",
        )
        self.state = state
        return True

    async def update(self, layer_ok: bool = True) -> None:
        """Recompute the state and tell every watcher when it changed."""
        if self.evaluate(layer_ok):
            await self.broadcast()

    async def run(self, layer_ok: Callable[[], bool]) -> None:
        """The watchdog: re-evaluate a few times per ``timeout``, so silence (no heartbeat) and a
        lasting layer outage (``layer_ok()`` False) are noticed without any message arriving."""
        interval = max(0.1, min(1.0, self.timeout / 4))
        while True:
            await asyncio.sleep(interval)
            await self.update(layer_ok())

    def frame(self) -> str:
        """The ``pipeline`` message for clients."""
        return control("pipeline", state=self.state, lag=None if self.state == "no_listener" else self.lag)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(frame)`` on every change; returns the function that stops it."""
        self.watchers.add(watcher)
        return lambda: self.watchers.discard(watcher)

    async def broadcast(self) -> None:
        frame = self.frame()
        for watcher in list(self.watchers):
            try:
                await watcher(frame)
            except Exception as exc:  # a closing connection must not keep the others uninformed
                logger.debug("could not tell a connection about the pipeline: %s", exc)
