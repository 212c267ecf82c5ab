"""A direct write path for event frames under daphne: one pre-framed buffer, many sockets.

Through ASGI, every frame to every socket walks the session and cookie middleware, daphne's
``handle_reply`` and autobahn's framing: tens of microseconds per socket, which is what caps
a process at a few thousand deliveries per second. An event's WebSocket frame is the same
bytes for every client (server frames are not masked), so it is built once
(:func:`text_frame`) and written to each socket's transport as is.

:func:`direct` takes daphne's protocol (found once per connection by
``pgevents.delivery.transport``) and gives a :class:`Direct`. When the server is not daphne
or anything looks different from what is expected, it returns ``None`` and frames go
through ASGI as before. The hub writes one frame (or run of frames) to all of a channel's
live sockets with :func:`write_each`: per socket, a few attribute reads and the ``send()``,
which is about three quarters of the CPU of a delivery (docs/benchmarks.md). Writes go
through the same transport as daphne's own sends, so control messages and events keep
their order.

When the transport is a plain TCP connection whose output buffer is empty (the usual case),
the frame goes straight to the socket: one ``send()`` system call, instead of registering
the socket for writability, waiting for the next poll and unregistering it again (three
system calls and a loop iteration per socket per event). Whatever the socket does not take
at once goes to the transport's buffer, behind which everything else then queues. A client
whose buffer passes ``MAX_SEND_BUFFER`` has stopped reading: it is disconnected (and resumes
from its last id when it reconnects) instead of holding memory without bound or stalling
anyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pgevents.delivery.transport import TwistedSocket

logger = logging.getLogger(__name__)


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 §5.2)."""
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


def _buffered(transport: Any) -> int:
    """Bytes a twisted transport holds that the socket has not taken yet."""
    return TwistedSocket(transport).pending()


def _plain_tcp(transport: Any) -> bool:
    """A twisted TCP connection without TLS, whose socket can be written directly."""
    return (
        type(transport).__module__ == "twisted.internet.tcp"
        and getattr(transport, "TLS", True) is False
        and hasattr(transport, "socket")
        and hasattr(transport, "_tempDataBuffer")
        and hasattr(transport, "_tempDataLen")
        and hasattr(transport, "dataBuffer")
    )


class Direct:
    """One daphne WebSocket written directly: what :func:`write_each` needs of it, found once.

    ``write`` is the sink's ``write_nowait`` (one socket at a time); the hub's fan-out uses
    :func:`write_each`, which does the same checks for many sockets in one loop, without a
    Python call per socket.
    """

    __slots__ = ("limit", "on_slow", "open_state", "owner", "protocol", "send", "transport")

    def __init__(self, protocol: Any, *, limit: int, on_slow: Callable[[], None], owner: Any = None) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        #: The socket's own ``send``, bound once (a connection's socket never changes; a closed
        #: one raises, and the transport's flags say so before that).
        self.send: Callable[[bytes], int] = self.transport.socket.send
        self.open_state = protocol.STATE_OPEN
        self.limit = limit
        self.on_slow = on_slow
        self.owner = owner

    def write(self, data: bytes) -> bool:
        """Write ``data`` (whole frames); False when the socket is no longer open (dropped)."""
        protocol, transport, owner = self.protocol, self.transport, self.owner
        if (
            protocol.state != self.open_state
            or not transport.connected
            or transport.disconnecting
            or (owner is not None and owner.closing)
        ):
            return False
        if protocol.send_queue:  # autobahn is trickling a queued send: stay behind it
            protocol.sendData(data)
        elif not transport._tempDataBuffer and len(transport.dataBuffer) == transport.offset:
            try:
                sent = self.send(data)
            except OSError:  # EAGAIN, EINTR: none taken; anything else the transport finds on its next write
                sent = 0
            if sent < len(data):
                transport.write(data[sent:])
        elif _buffered(transport) > self.limit:
            # A client that stopped reading: stop queueing for it rather than buffer without
            # bound. It reconnects and resumes from its last id, reading the rest from the log.
            self.on_slow()
            return False
        else:
            transport.write(data)
        return True


def write_each(targets: list[Direct], data: bytes) -> None:
    """``data`` to every socket of ``targets``: what ``Direct.write`` does, inlined for the
    common case (open, nothing buffered: one ``send()``), so a fan-out to a thousand sockets
    costs a thousand system calls and a few attribute reads each, not two Python calls each.
    Anything else (a partial send, a buffer, a closing socket) takes ``Direct.write``. One
    socket failing unexpectedly is logged and skipped; the others still get ``data``."""
    n = len(data)
    remaining = iter(targets)
    while True:
        try:
            for d in remaining:
                transport = d.transport
                if (
                    d.protocol.state == d.open_state
                    and transport.connected
                    and not transport.disconnecting
                    and not transport._tempDataBuffer
                    and len(transport.dataBuffer) == transport.offset
                    and not d.protocol.send_queue
                    and (d.owner is None or not d.owner.closing)
                ):
                    try:
                        sent = d.send(data)
                    except OSError:
                        sent = 0
                    if sent < n:
                        transport.write(data[sent:])
                else:
                    d.write(data)
            return
        except Exception:  # the loop goes on with the next socket
            logger.exception("a direct write failed")


def direct(protocol: Any, *, limit: int, on_slow: Callable[[], None], owner: Any = None) -> Direct | None:
    """A direct writer for daphne's WebSocket ``protocol``, or None to keep using ASGI.

    Only plain TCP transports get one (anything else, TLS included, goes through ASGI and its
    own flow control). The buffer is measured only when the socket did not take a frame at
    once: past ``limit`` bytes the frame is dropped and ``on_slow()`` decides (pgevents closes
    with ``too_slow``/4408; the client resumes from its last id). While ``owner.closing`` is
    true nothing is written (checked here rather than in a wrapper: this runs once per
    socket per write, and one Python call less per socket is measurable at 50,000 a second).
    """
    if protocol is None or not all(hasattr(protocol, a) for a in ("transport", "state", "STATE_OPEN", "send_queue")):
        return None
    if not _plain_tcp(protocol.transport):
        return None
    return Direct(protocol, limit=limit, on_slow=on_slow, owner=owner)
