"""Clients that stop reading but keep their connections: the server's memory while events flow.

``readers`` SSE streams (or WebSockets) subscribe to ``bench`` from raw sockets with a 4 KiB
receive buffer and never read; the writer inserts ``rate`` rows a second of ``row_bytes``
each for ``seconds`` while one normal WebSocket client reads everything. The server's RSS is
sampled throughout (start, peak, end). Afterwards each stalled socket is read: a client cut
off finds the ``too_slow`` hint behind what was already on its way, or, once the grace
period (``CLOSE_GRACE``) has passed, finds its connection dropped.
"""

from __future__ import annotations

import base64
import os
import socket
import time

from . import servers
from .clients import Workers
from .report import Row
from .scenarios import MB, Context, settle
from .writer import write


def _stalled(kind: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    if kind == "sse":
        request = f"GET /pgevents/sse/bench/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/pgevents/bench/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n\r\n"
        )
    sock.sendall(request.encode())
    sock.settimeout(30)
    seen = b""
    while b'"subscribed"' not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"the stalled {kind} client was refused: {seen[-300:]!r}")
        seen += chunk
    return sock


def _fate(sock: socket.socket, timeout: float = 20.0) -> str:
    """What became of a stalled client, read afterwards (for at most ``timeout`` s):
    ``hint`` (its stream ends with the ``too_slow`` message), ``dropped`` (the server dropped
    the connection after the grace period) or ``open`` (never cut off)."""
    deadline = time.monotonic() + timeout
    tail = b""
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(1 << 20)
            if not chunk:
                return "dropped"
            tail = (tail + chunk)[-4096:]
            if b'"too_slow"' in tail:
                return "hint"
    except TimeoutError:
        pass
    except OSError:
        return "dropped"
    return "open"


def stalled(ctx: Context, kind: str, readers: int, rate: float, seconds: float, row_bytes: int) -> list[Row]:
    settle(ctx.url)
    count = int(rate * seconds)
    server, port = ctx.daphne()
    workers = Workers(1, ctx.client_nice)
    socks: list[socket.socket] = []
    try:
        workers.connect("127.0.0.1", port, "/ws/pgevents/bench/", 1)
        socks = [_stalled(kind, port) for _ in range(readers)]
        monitor = servers.Monitor({"server": [server.proc.pid]})
        time.sleep(1.0)
        start = monitor.rss("server")
        with monitor:
            write(ctx.url, "bench_events", count, rate, payload="x" * row_bytes)
            results = workers.wait(count, timeout=60 + seconds)
            end = monitor.rss("server")
        fates = [_fate(s) for s in socks]
    finally:
        for s in socks:
            s.close()
        workers.close()
        server.stop()
    received = sum(r.received for r in results)
    peak = monitor.usage["server"].rss_max
    return [
        Row(
            scenario=f"{readers} stalled {kind.upper()} readers, {rate:,.0f} ev/s x {row_bytes:,} B, {seconds:.0f} s",
            system=f"pgevents ({ctx.server})",
            expected=count,
            received=received,
            server_rss_mb=peak / MB,
            notes=f"RSS {start / MB:.0f} MB at start, {end / MB:.0f} MB at end, peak {peak / MB:.0f} MB; "
            f"stalled readers: {fates.count('hint')} read the too_slow hint, {fates.count('dropped')} were dropped "
            f"after the grace period, {fates.count('open')} still open; the reading client got {received:,}/{count:,}",
        )
    ]
