"""What waits to be sent to one client, bounded in bytes.

Two faces need it. An SSE stream is written by Django's response loop, which pulls chunks
from here; a WebSocket under a server whose ``send`` waits for the client (uvicorn,
hypercorn: ``send`` returns only when the server's buffer has room) is written by a task of
its own (:class:`Writer`), so that no one who offers it an event (the hub, fanning out to
every client of a channel) ever waits for it. Under daphne WebSockets need neither: daphne's
``send`` never waits and its buffer is read directly (``fastsend``, ``flow``).

Live events must not wait, so :meth:`Outbox.offer` refuses what would take the client past
its limit (the queue plus what the server's socket holds): the caller then cuts the client
off (``too_slow``) and it resumes from the log. Replays may wait (:meth:`Outbox.room`): they
go at the client's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from pgevents.delivery.transport import Socket

logger = logging.getLogger(__name__)


class Outbox:
    __slots__ = ("_items", "_ready", "_room", "limit", "queued", "socket")

    def __init__(self, limit: int, socket: Socket | None = None) -> None:
        self.limit = limit
        self.socket = socket
        self._items: deque[tuple[Any, int]] = deque()
        self.queued = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def pending(self) -> int:
        """Bytes waiting for this client: here, and in the server's socket buffer."""
        return self.queued + (self.socket.pending() if self.socket is not None else 0)

    def offer(self, item: Any, size: int) -> bool:
        """Queue ``item`` unless that would take the client past ``limit``."""
        pending = self.pending()
        if pending and pending + size > self.limit:  # (an event larger than the limit goes alone)
            return False
        self.put(item, size)
        return True

    def put(self, item: Any, size: int = 0) -> None:
        """Queue ``item`` whatever the backlog (control messages, the goodbye)."""
        self._items.append((item, size))
        self.queued += size
        self._ready.set()
        if self.queued > self.limit // 2:
            self._room.clear()

    def clear(self) -> None:
        """Drop everything queued (a client being cut off gets only its goodbye)."""
        self._items.clear()
        self.queued = 0
        self._room.set()

    async def get(self) -> Any:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item, size = self._items.popleft()
        self.queued -= size
        if self.queued <= self.limit // 2:
            self._room.set()
        return item

    async def room(self) -> None:
        """Wait until at most half the limit is queued (replays go at the client's pace)."""
        await self._room.wait()


class Writer:
    """Sends an outbox's ASGI messages in order with ``send``, in a task of its own."""

    def __init__(self, outbox: Outbox, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.outbox = outbox
        self._send = send
        self._task = asyncio.ensure_future(self._run())

    async def send(self, message: dict[str, Any]) -> None:
        """An ASGI ``send`` that queues instead of waiting."""
        text = message.get("text")
        self.outbox.put(message, len(text) if text else 0)

    async def _run(self) -> None:
        try:
            while True:
                message = await self.outbox.get()
                await self._send(message)
                if message.get("type") == "websocket.close":
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection is gone; its disconnect ends the consumer
            logger.debug("WebSocket writer stopped: %s", exc)

    def stop(self) -> None:
        self._task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
