"""A stand-in for pg_eventserv, for testing the benchmark's ``--peer``: it forwards every
NOTIFY payload of one channel, as is, to each WebSocket client connected at
``/listen/<channel>``.

Run as ``python -m tests.peer_standin DATABASE_URL PORT CHANNEL``; it prints ``ready`` once
it listens. It has no auth, no replay and no backpressure: it only has to speak the
protocol the benchmark's raw clients read.
"""

from __future__ import annotations

import asyncio
import sys

import psycopg
from psycopg import sql
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main(url: str, port: int, channel: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != f"/listen/{channel}":
            await ws.close(4004, "unknown channel")
            return
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        async with serve(handler, "127.0.0.1", port):
            print("ready", flush=True)
            async for note in conn.notifies():
                broadcast(clients, note.payload)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
