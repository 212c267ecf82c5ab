"""``runlisten --health-port``: the tiny HTTP server, against a listener's state."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from pgevents.capture.healthserver import HealthServer


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    writer.write_eof()  # nothing more is coming: an incomplete request ends here
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


def test_health_says_what_the_listener_does_and_refuses_the_rest() -> None:
    async def body() -> None:
        listener = SimpleNamespace(active=False, standby=True, forwarded=3, last_forward_at=None, database=None)
        server = HealthServer(listener)
        await server.start()
        try:
            answer = await request(server.port, b"GET /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(payload)["status"] == "standby"
            listener.standby = False
            assert (await request(server.port, b"HEAD /health HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 503")
            assert (await request(server.port, b"HEAD /health HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\n")  # no body
            assert (await request(server.port, b"POST /health HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
            assert (await request(server.port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
            assert await request(server.port, b"GET /health") == b""  # an incomplete request: closed
        finally:
            await server.close()

    asyncio.run(body())
