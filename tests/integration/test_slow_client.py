"""A client that stops reading is closed (``too_slow``, 4408) once too much waits for it, even
on the direct write path, and nobody else on its channel waits for it meanwhile."""

from __future__ import annotations

import base64
import os
import socket

import psycopg

from tests.support import Client, Stack, run, wait_until

ROWS = 400
ROW_BYTES = 20_000  # ~8 MB in all: past the per-client limit and the kernel's socket buffers


def _stalled_client(stack: Stack) -> socket.socket:
    """A WebSocket subscribed to ``people`` that never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stack.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/pgevents/people/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {stack.http}\r\n\r\n".encode()
    )
    sock.settimeout(15)
    seen = b""
    while b'"subscribed"' not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    return sock


def test_a_client_that_stops_reading_is_dropped_and_does_not_stall_others(stack: Stack, pg: psycopg.Connection) -> None:
    stalled = _stalled_client(stack)
    assert stack.daphne is not None
    closed_before = stack.daphne.output().count("closing a WebSocket that stopped reading")

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as reader:
            await reader.expect("subscribed")
            pg.execute(
                "INSERT INTO people (name) SELECT repeat('x', %s) || g FROM generate_series(1, %s) g",
                (ROW_BYTES, ROWS),
            )
            got = await reader.events(ROWS, timeout=60)
            assert [e["id"] for e in got] == sorted(e["id"] for e in got)

    try:
        run(scenario())
        wait_until(
            lambda: stack.daphne.output().count("closing a WebSocket that stopped reading") > closed_before,
            30,
            what="the stalled client to be closed",
        )
        # What was queued for it ends with the documented error (then the 4408 close frame).
        stalled.settimeout(10)
        seen = b""
        while b'"too_slow"' not in seen:
            chunk = stalled.recv(1 << 20)
            assert chunk, "the stream ended without the too_slow error"
            seen = seen[-64:] + chunk
    finally:
        stalled.close()
        pg.execute("DELETE FROM people WHERE length(name) > %s", (ROW_BYTES,))
