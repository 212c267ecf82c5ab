"""Backpressure for daphne WebSockets: how much a socket has not written yet.

ASGI's ``send`` never waits: daphne hands each frame to Twisted, which buffers it in memory
until the kernel takes it. A client that stops reading would make that buffer grow without
bound. The consumer's ``send`` callable is daphne's ``partial(server.handle_reply, protocol)``,
(kept in the scope by ``routing.ServerSendMiddleware``, outside the session middleware that
wraps it), so the protocol and its Twisted transport can be reached. ``Flow`` becomes the
transport's streaming producer, so Twisted tells it when the buffer passes its high-water
mark (``pauseProducing``) and when it has been written out (``resumeProducing``). The
transport already has a producer after the HTTP upgrade (daphne's HTTP channel, which stops
reading from a socket whose writes are stuck): ``Flow`` passes every call on to it, so that
behaviour is unchanged.

Under another ASGI server ``Flow.attach`` returns None and pgevents does without: a slow
client is then bounded only by that server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)

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
        self.previous: Any = None

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
        if getattr(transport, "producer", None) is None:
            transport.registerProducer(flow, True)
        elif getattr(transport, "streamingProducer", False):
            flow.previous, transport.producer = transport.producer, flow
            if getattr(transport, "producerPaused", False):
                flow._writable.clear()
        else:  # a pull producer we cannot stand in for
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
        self._writable.set()
        if getattr(self.transport, "producer", None) is self:
            self.transport.producer = self.previous

    # -- Twisted's IPushProducer, passed on to the producer it stands in for ----------------
    def pauseProducing(self) -> None:
        self._writable.clear()
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        self._writable.set()
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        self._writable.set()
        if self.previous is not None:
            self.previous.stopProducing()
