"""A sink that records what a subscription sends, for fast tests of the delivery core.

``RecordingSink`` follows the ``pgevents.delivery.subscription.Sink`` protocol: every frame
is kept (decoded) in arrival order, and ``next()`` waits for the next one, so a test asserts
what a client would receive without a socket. With ``direct=True`` it also takes the hub's
synchronous writes of ready-made WebSocket frames (``write_nowait``, and the hub's fan-out
through ``direct``), as a daphne socket does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pgevents.delivery.fastsend import Direct


class RecordedSocket(Direct):
    """A ``fastsend.Direct`` that records instead of sending. It never looks open to
    ``fastsend.write_each``'s inline ``send()``, so every write of the hub's fan-out comes
    to :meth:`write`, as a socket that cannot take a frame at once does."""

    state = "recorded"  # never ``open_state``

    def __init__(self, record: Callable[[bytes], bool]) -> None:
        self.protocol = self
        self.transport = None
        self.open_state = "open"
        self.owner = None
        self._record = record

    def write(self, data: bytes) -> bool:
        return self._record(data)


class RecordingSink:
    def __init__(self, *, direct: bool = False) -> None:
        #: Everything received, decoded, in order; each dict also says how it came:
        #: ``"via"`` is ``"live"``, ``"replay"``, ``"direct"`` or ``"control"``.
        self.received: list[dict[str, Any]] = []
        #: The raw bytes of each direct write (a run of events is one write).
        self.writes: list[bytes] = []
        self._arrived = asyncio.Event()
        self._read = 0
        if direct:
            self.write_nowait = self._write_nowait
            self.direct = RecordedSocket(self._write_nowait)

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        self._keep(frame, "replay" if replay else "live")

    async def send_control(self, frame: str) -> None:
        self._keep(frame, "control")

    def _write_nowait(self, data: bytes) -> bool:
        self.writes.append(data)
        for text in _texts(data):
            self._keep(text, "direct")
        return True

    def _keep(self, frame: str, via: str) -> None:
        self.received.append({**json.loads(frame), "via": via})
        self._arrived.set()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message not yet returned by ``next()``, waiting up to ``timeout`` seconds."""
        while len(self.received) <= self._read:
            self._arrived.clear()
            async with asyncio.timeout(timeout):  # as everywhere: a scope, not wait_for
                await self._arrived.wait()
        self._read += 1
        return self.received[self._read - 1]

    def events(self) -> list[dict[str, Any]]:
        """The events received so far (no control messages)."""
        return [m for m in self.received if m["type"] == "event"]


def _texts(data: bytes) -> list[str]:
    """The payloads of back-to-back unmasked WebSocket text frames (``fastsend.text_frame``)."""
    out = []
    while data:
        n, start = data[1] & 0x7F, 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, start = int.from_bytes(data[2:10], "big"), 10
        out.append(data[start : start + n].decode("utf-8"))
        data = data[start + n :]
    return out
