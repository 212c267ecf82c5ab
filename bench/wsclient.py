"""A lean WebSocket client for load: many sockets per process, no per-message JSON parsing.

The benchmark must measure the server, not the client, so frames are parsed by hand
(server frames are unmasked) and only two integers are pulled out of each event: the
durable ``id`` (order, loss and duplicates) and the row's ``seqno`` (the writer's number,
which maps the receipt time to the commit time). Receipt times are taken once per
``data_received`` call: every frame in one read arrived at the same moment.

A *raw* client (``raw=True``) drives another server (``--peer``): every text frame is a
forwarded NOTIFY payload, ``row_to_json(NEW)`` of a bench row, so its ``pk`` orders it and its
``seqno`` times it; the socket counts as subscribed once the upgrade is answered.

``key`` names another integer of the row to time a frame by (``bench.regions`` times the
demo's rows by their ``pk``); frames that carry a region's HTML (``"html":{``) are counted.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from array import array
from dataclasses import dataclass, field

EVENT_PREFIX = b'{"at": '  # jsonb renders keys by length: durable events start with "at"
ID_KEY = b'"id": '
SEQNO_KEY = b'"seqno": '
#: ``row_to_json`` renders without spaces.
RAW_ID_KEY = b'"pk":'
RAW_SEQNO_KEY = b'"seqno":'
#: A frame with a shared region's HTML (``pgevents.delivery.shared.with_html``).
HTML_KEY = b',"html":{'


@dataclass
class Tally:
    """What one socket saw."""

    received: int = 0
    #: Events that carried a region's HTML.
    html: int = 0
    #: Events whose id was not above the previous one (a duplicate or out of order).
    disorder: int = 0
    last_id: int = 0
    seqnos: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))


def _int_after(data: bytes, key: bytes, start: int = 0) -> int:
    i = data.find(key, start)
    if i < 0:
        return -1
    i += len(key)
    j = i
    while 48 <= data[j] <= 57:
        j += 1
    return int(data[i:j]) if j > i else -1  # null (a non-durable event's id)


class WsClient(asyncio.Protocol):
    def __init__(
        self, host: str, port: int, path: str, record: bool = True, raw: bool = False, key: str = "seqno"
    ) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}:{port}\r\n\r\n"
        ).encode()
        self.record = record
        self.raw = raw
        self.seqno_key = SEQNO_KEY if key == "seqno" else f'"{key}": '.encode()
        self.tally = Tally()
        self.subscribed = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._upgraded = False
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"closed before subscribing: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.subscribed.set_exception(ConnectionError(buf[:200].decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            buf = buf[end + 4 :]
            if self.raw and not self.subscribed.done():
                self.subscribed.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            if opcode == 1:
                self._text(payload, now)
            elif opcode == 9:
                self._send(10, payload)  # pong
            elif opcode == 8:
                assert self.transport is not None
                self.transport.close()
        self._buf = buf[pos:]

    def _text(self, payload: bytes, now: float) -> None:
        if self.raw:
            self._count(payload, now, RAW_ID_KEY, RAW_SEQNO_KEY)
        elif payload.startswith(EVENT_PREFIX):
            self._count(payload, now, ID_KEY, self.seqno_key)
        elif payload.startswith(b'{"type":"subscribed"') and not self.subscribed.done():
            self.subscribed.set_result(_int_after(payload, b'"last_event_id":'))

    def _count(self, payload: bytes, now: float, id_key: bytes, seqno_key: bytes) -> None:
        tally = self.tally
        id_ = _int_after(payload, id_key)
        if id_ <= tally.last_id:
            tally.disorder += 1
        else:
            tally.last_id = id_
        tally.received += 1
        if HTML_KEY in payload:
            tally.html += 1
        if self.record:
            tally.seqnos.append(_int_after(payload, seqno_key))
            tally.times.append(now)

    def _send(self, opcode: int, payload: bytes) -> None:
        """Client frames must be masked; a zero mask keeps the payload as is."""
        assert len(payload) < 126 and self.transport is not None
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(8, (1000).to_bytes(2, "big"))
            self.transport.close()


async def connect(
    host: str, port: int, path: str, record: bool = True, raw: bool = False, key: str = "seqno"
) -> WsClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WsClient(host, port, path, record, raw, key), host, port)
    await asyncio.wait_for(client.subscribed, 60)
    return client
