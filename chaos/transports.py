"""The three kinds of chaos client: one-channel WebSocket, multiplexed WebSocket, SSE.

Raw clients on purpose: the bundled ``pgevents.js`` drops ids it has already seen, and a
client that forgives nothing is what shows the server's guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import websockets

from .clients import Client, ConnectionEnded


class WebSocketClient(Client):
    async def _connect(self, port: int, path: str) -> Any:
        return await websockets.connect(
            f"ws://127.0.0.1:{port}{path}",
            origin=websockets.Origin(f"http://127.0.0.1:{port}"),
            max_size=None,
            open_timeout=10,
            close_timeout=2,
        )

    async def _read(self) -> None:
        conn = self._conn
        async for raw in conn:
            self.handle(json.loads(raw))
            if self._refused:
                raise ConnectionEnded("a subscription was refused")
        raise ConnectionEnded(f"closed by the server: {conn.close_code} {conn.close_reason}")

    async def _close(self, abort: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if abort:
            conn.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await conn.close()


class SingleChannelClient(WebSocketClient):
    """``/ws/pgevents/<channel>/?last_event_id=N``."""

    kind = "ws-single"

    async def _open(self, port: int) -> Any:
        (stream,) = self.streams.values()
        query = "" if stream.last_id is None else f"?last_event_id={stream.last_id}"
        return await self._connect(port, f"/ws/pgevents/{stream.channel}/{query}")


class MultiplexedClient(WebSocketClient):
    """``/ws/pgevents/`` with one ``subscribe`` per channel."""

    kind = "ws-multi"

    async def _open(self, port: int) -> Any:
        conn = await self._connect(port, "/ws/pgevents/")
        for stream in self.streams.values():
            message: dict[str, Any] = {"type": "subscribe", "channel": stream.channel}
            if stream.last_id is not None:
                message["last_event_id"] = stream.last_id
            await conn.send(json.dumps(message))
        return conn


class SSEClient(Client):
    """``GET /pgevents/sse/<channel>/`` over a plain HTTP/1.1 connection."""

    kind = "sse"

    async def _open(self, port: int) -> Any:
        (stream,) = self.streams.values()
        path, headers = f"/pgevents/sse/{stream.channel}/", ""
        if stream.last_id is not None:
            if self.plan.rng.random() < 0.5:
                headers = f"Last-Event-ID: {stream.last_id}\r\n"
            else:
                path += f"?last_event_id={stream.last_id}"
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=2**24), 10)
        self._conn = writer
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{headers}\r\n".encode()
        )
        status = await asyncio.wait_for(reader.readline(), 10)
        fields: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        if status.split()[1:2] != [b"200"]:
            body = await asyncio.wait_for(reader.read(500), 5)
            raise ConnectionEnded(f"{status.decode('latin-1').strip()} {body[:300]!r}")
        self._reader = reader
        self._chunked = fields.get("transfer-encoding", "").lower() == "chunked"
        return writer

    async def _read(self) -> None:
        buffer = bytearray()
        async for data in self._body():
            buffer += data.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                block, buffer = bytes(buffer[:end]), buffer[end + 2 :]
                self._block(block.decode("utf-8"))
        raise ConnectionEnded("the server ended the stream")

    def _block(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            self.handle(json.loads(fields["data"]), fields.get("id") if fields.get("event") != "control" else None)

    async def _body(self) -> AsyncIterator[bytes]:
        reader = self._reader
        if not self._chunked:
            while data := await reader.read(65536):
                yield data
            return
        while size_line := await reader.readline():
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            yield (await reader.readexactly(size + 2))[:-2]

    async def _close(self, abort: bool) -> None:
        writer, self._conn = self._conn, None
        if writer is None:
            return
        if abort:
            writer.transport.abort()
        else:
            writer.close()


KINDS: dict[str, type[Client]] = {c.kind: c for c in (SingleChannelClient, MultiplexedClient, SSEClient)}
