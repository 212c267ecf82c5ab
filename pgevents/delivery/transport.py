"""The server's socket behind an ASGI ``send``: what it has not written yet, and how to drop it.

ASGI hides the connection, but bounding a client that stops reading needs two things it
does not give: how many bytes wait for that client, and a way to drop a connection that does
not even take the close. This module is the one place that reaches behind ``send`` for them.

It starts from the server's own ``send`` (kept in the scope as :data:`SERVER_SEND` by
``pgevents.routing.ServerSendMiddleware``, outermost, before any middleware wraps it), or
from a Channels consumer's ``base_send`` (through Channels' session and cookie wrappers):

- daphne: ``send`` is ``partial(server.handle_reply, protocol)``; the protocol (a WebSocket
  protocol or an HTTP request) holds a Twisted transport (:func:`daphne_protocol`);
- uvicorn and hypercorn: ``send`` is a method of an object that holds an asyncio transport,
  directly (uvicorn) or a few owners down (hypercorn: stream → protocol → TCP server's
  ``writer``).

Anything else gives ``None``, and pgevents does without (see docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any, Protocol, cast

#: Scope key of the server's own ``send``.
SERVER_SEND = "pgevents.server_send"


class Socket(Protocol):
    def pending(self) -> int:
        """Bytes handed to the server for this client and not yet taken by the kernel."""

    def undelivered(self) -> int:
        """``pending()`` plus what the kernel holds that the client has not acknowledged."""

    def abort(self) -> None:
        """Drop the TCP connection now, whatever is still buffered."""


def _kernel_queue(sock: Any) -> int:
    """Bytes in a TCP socket's send queue not yet acknowledged by the peer (Linux; 0 elsewhere)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (AttributeError, OSError, ValueError):
        return 0


def daphne_protocol(send: Any) -> Any | None:
    """daphne's protocol object behind ``send`` (its own, or wrapped by Channels), or None."""
    for _ in range(8):  # a few middleware layers at most
        if isinstance(send, functools.partial):
            if getattr(send.func, "__name__", "") == "handle_reply" and len(send.args) == 1:
                protocol = send.args[0]
                return protocol if getattr(protocol, "transport", None) is not None else None
            return None
        owner = getattr(send, "__self__", None)
        send = getattr(owner, "real_send", None)  # channels' InstanceSessionWrapper / cookie wrapper
        if send is None:
            return None
    return None


class TwistedSocket:
    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pending(self) -> int:
        t = self.transport
        return int(len(t.dataBuffer) - t.offset + t._tempDataLen)

    def undelivered(self) -> int:
        if self.transport.disconnected:
            return 0
        return self.pending() + _kernel_queue(getattr(self.transport, "socket", None))

    def abort(self) -> None:
        if not self.transport.disconnected:
            self.transport.abortConnection()


class AsyncioSocket:
    __slots__ = ("transport",)

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    def pending(self) -> int:
        return int(self.transport.get_write_buffer_size())

    def undelivered(self) -> int:
        if self.transport.is_closing() and self.pending() == 0:
            return 0
        return self.pending() + _kernel_queue(self.transport.get_extra_info("socket"))

    def abort(self) -> None:
        # A plain close would queue the FIN behind the unsent bytes, and a client that does
        # not read keeps the connection; linger 0 makes it a reset, as Twisted's abort does.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


def _is_write_transport(transport: Any) -> bool:
    """An asyncio write transport, by what it does: uvloop's (which uvicorn uses when it is
    installed) implement the interface without subclassing ``asyncio.WriteTransport``."""
    return isinstance(transport, asyncio.WriteTransport) or all(
        callable(getattr(transport, name, None)) for name in ("get_write_buffer_size", "get_extra_info", "abort")
    )


def _asyncio_transport(send: Any) -> asyncio.WriteTransport | None:
    for _ in range(4):
        owner = getattr(send, "__self__", None)
        if owner is None:
            return None
        transport = getattr(owner, "transport", None)
        if transport is None:
            transport = getattr(getattr(owner, "writer", None), "transport", None)
        if transport is not None and _is_write_transport(transport):
            return cast(asyncio.WriteTransport, transport)
        send = getattr(owner, "send", None)
    return None


def find(send: Any) -> Socket | None:
    """The socket behind ``send``, or None when it cannot be seen."""
    protocol = daphne_protocol(send)
    if protocol is not None:
        transport = protocol.transport
        if all(hasattr(transport, a) for a in ("dataBuffer", "offset", "_tempDataLen", "abortConnection")):
            return TwistedSocket(transport)
        return None
    transport = _asyncio_transport(send)
    return AsyncioSocket(transport) if transport is not None else None


def abort_later(socket: Socket | None, delay: float, fallback: Callable[[], None] | None = None) -> asyncio.TimerHandle:
    """After ``delay`` seconds, drop the connection if it still has bytes the client has not
    taken, in the server or in the kernel (a client being cut off for not reading gets that
    long to read the rest and the goodbye; one that did may already be reusing the
    connection). Without a socket, ``fallback`` runs instead (it frees what pgevents holds)."""

    def fire() -> None:
        if socket is not None:
            if socket.undelivered() > 0:  # not even the kernel could hand it all over
                socket.abort()
        elif fallback is not None:
            fallback()

    return asyncio.get_running_loop().call_later(delay, fire)
