"""A direct write path for event frames under daphne: one pre-framed buffer, many sockets.

Through ASGI, every frame to every socket walks the session and cookie middleware, daphne's
``handle_reply`` and autobahn's framing: tens of microseconds per socket, which is what caps
a process at a few thousand deliveries per second. An event's WebSocket frame is the same
bytes for every client (server frames are not masked), so it is built once
(:func:`text_frame`) and written to each socket's transport as is.

:func:`writer` takes daphne's protocol (found once per connection by
``pgevents.delivery.transport``). When the server is not daphne or anything looks different
from what is expected, it returns ``None`` and frames go through ASGI as before. Writes go
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

from collections.abc import Callable
from typing import Any

from pgevents.delivery.transport import TwistedSocket

#: ``(data) -> bool``: False when the socket is no longer open (the frame is dropped).
Writer = Callable[[bytes], bool]


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


def writer(protocol: Any, *, limit: int, on_slow: Callable[[], None], owner: Any = None) -> Writer | None:
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
    open_state = protocol.STATE_OPEN

    def write(data: bytes) -> bool:
        transport = protocol.transport
        if (
            protocol.state != open_state
            or transport is None
            or transport.disconnecting
            or (owner is not None and owner.closing)
        ):
            return False
        if protocol.send_queue:  # autobahn is trickling a queued send: stay behind it
            protocol.sendData(data)
        elif not transport._tempDataBuffer and len(transport.dataBuffer) == transport.offset and transport.connected:
            try:
                sent = transport.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport finds the error on its next write and closes
            if sent < len(data):
                transport.write(data[sent:])
        elif _buffered(transport) > limit:
            # A client that stopped reading: stop queueing for it rather than buffer without
            # bound. It reconnects and resumes from its last id, reading the rest from the log.
            on_slow()
            return False
        else:
            transport.write(data)
        return True

    return write
