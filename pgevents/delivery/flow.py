"""Backpressure under daphne: when a connection's Twisted buffer is full, and when it drained.

daphne's ``send`` never waits: it hands each frame (or SSE chunk) to Twisted, which buffers
it in memory until the kernel takes it. A client that stops reading would make that buffer
grow without bound. ``pgevents.delivery.transport`` finds daphne's protocol (a WebSocket or
an HTTP request) behind ``send``, and with it the Twisted transport. ``Flow`` becomes the
transport's streaming producer, so Twisted tells it when the buffer passes its high-water
mark (``pauseProducing``) and when it has been written out (``resumeProducing``). The
transport already has a producer after the HTTP upgrade (daphne's HTTP channel, which stops
reading from a socket whose writes are stuck): ``Flow`` passes every call on to it, so that
behaviour is unchanged.

Under another ASGI server there is no Flow: its ``send`` itself waits while the buffer is
full (see ``outbox``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pgevents import conf
from pgevents.delivery.transport import TwistedSocket

logger = logging.getLogger(__name__)


class Flow:
    """One WebSocket's write buffer, seen from the application."""

    def __init__(self, protocol: Any, transport: Any) -> None:
        self.protocol = protocol
        self.transport = transport
        #: Paused by Twisted (its buffer passed the high-water mark). Waiters share one future,
        #: made only when someone waits: an idle connection holds no event object.
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.previous: Any = None

    @classmethod
    def attach(cls, protocol: Any) -> Flow | None:
        """A Flow for daphne's ``protocol`` (see ``transport.daphne_protocol``); None without one."""
        if protocol is None:
            return None
        transport = getattr(protocol, "transport", None)
        if transport is None or not hasattr(transport, "registerProducer") or not hasattr(transport, "dataBuffer"):
            return None
        flow = cls(protocol, transport)
        if getattr(transport, "producer", None) is None:
            transport.registerProducer(flow, True)
        elif getattr(transport, "streamingProducer", False):
            flow.previous, transport.producer = transport.producer, flow
            if getattr(transport, "producerPaused", False):
                flow._paused = True
        else:  # a pull producer we cannot stand in for
            return None
        return flow

    def pending(self) -> int:
        """Bytes handed to the transport and not yet accepted by the kernel."""
        return TwistedSocket(self.transport).pending()

    async def writable(self) -> None:
        """Wait until the transport has written its buffer out (or the socket is gone)."""
        if not self._paused:
            return
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drained)  # one waiter giving up leaves the others waiting

    def _resume(self) -> None:
        self._paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def release(self) -> None:
        """Stop waiting for the buffer to drain (a client being cut off gets its goodbye)."""
        self._resume()

    def close_grace(self) -> None:
        """Give a client being closed time to read the close frame behind its backlog."""
        if hasattr(self.protocol, "closeHandshakeTimeout"):
            self.protocol.closeHandshakeTimeout = max(self.protocol.closeHandshakeTimeout, conf.get().close_grace)

    def detach(self) -> None:
        self._resume()
        if getattr(self.transport, "producer", None) is self:
            self.transport.producer = self.previous

    # -- Twisted's IPushProducer, passed on to the producer it stands in for ----------------
    def pauseProducing(self) -> None:
        self._paused = True
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        self._resume()
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        self._resume()
        if self.previous is not None:
            self.previous.stopProducing()
