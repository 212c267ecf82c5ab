"""Backpressure for daphne WebSockets: how much a socket has not written yet.

ASGI's ``send`` never waits: daphne hands each frame to Twisted, which buffers it in memory
until the kernel takes it. A client that stops reading would make that buffer grow without
bound. The consumer's ``send`` callable is daphne's ``partial(server.handle_reply, protocol)``,
so the protocol (and its Twisted transport) can be reached from it; ``Flow`` registers as the
transport's streaming producer, so Twisted tells it when the buffer passes its high-water
mark (``pauseProducing``) and when it has been written out (``resumeProducing``).

Under another ASGI server ``Flow.attach`` returns None and pgevents does without: a slow
client is then bounded only by that server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

logger = logging.getLogger("pgevents.flow")

#: Time a client closed for not reading gets to read what is queued and the close frame,
#: before the TCP connection is dropped (autobahn's default is 1 second).
CLOSE_GRACE = 30.0


class Flow:
    """One WebSocket's write buffer, seen from the application."""

    def __init__(self, protocol: Any, transport: Any) -> None:
        self.protocol = protocol
        self.transport = transport
        self._writable = asyncio.Event()
        self._writable.set()
        self.stopped = False

    @classmethod
    def attach(cls, send: Any) -> Flow | None:
        """A Flow for the socket behind daphne's ``send``; None if it is not daphne's."""
        if not isinstance(send, functools.partial) or not send.args:
            return None
        protocol = send.args[0]
        transport = getattr(protocol, "transport", None)
        if transport is None or not hasattr(transport, "registerProducer") or not hasattr(transport, "dataBuffer"):
            return None
        flow = cls(protocol, transport)
        try:
            transport.registerProducer(flow, True)
        except RuntimeError:  # someone else already streams to this transport
            return None
        return flow

    def pending(self) -> int:
        """Bytes handed to the transport and not yet accepted by the kernel."""
        t = self.transport
        return int(len(t.dataBuffer) - t.offset + t._tempDataLen)

    async def writable(self) -> None:
        """Wait until the transport has written its buffer out (or the socket is gone)."""
        await self._writable.wait()

    def close_grace(self) -> None:
        """Give a client being closed time to read the close frame behind its backlog."""
        if hasattr(self.protocol, "closeHandshakeTimeout"):
            self.protocol.closeHandshakeTimeout = max(self.protocol.closeHandshakeTimeout, CLOSE_GRACE)

    def detach(self) -> None:
        self.stopped = True
        self._writable.set()
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()

    # -- Twisted's IPushProducer ---------------------------------------------------------
    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        self.stopped = True
        self._writable.set()
