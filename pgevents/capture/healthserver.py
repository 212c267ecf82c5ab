"""``runlisten --health-port``: ``/health`` (JSON) and ``/metrics`` (Prometheus) over HTTP.

A tiny asyncio server on the listener's own loop, so it reports what that loop sees. One
request per connection, GET only, bounded reads: it is meant for a load balancer's or
Prometheus' probes on an internal address (it binds to 127.0.0.1 unless told otherwise).
``/metrics`` names channels, so like the web side's it answers only the addresses in
``PGEVENTS["METRICS_IPS"]`` (403 for others); ``/health`` names none and answers everyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from pgevents import conf, metrics
from pgevents.store import db, log

logger = logging.getLogger(__name__)

MAX_REQUEST = 8192


class HealthServer:
    def __init__(self, listener: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.listener = listener
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._scraped: dict[str, float] = {}
        metrics.register_scrape("listener", self._gauges)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def state(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/health``: 200 while active or standing by, else 503."""
        listener = self.listener
        role = "active" if listener.active else "standby" if listener.standby else "connecting"
        body = {
            "status": role,
            "forwarded": listener.forwarded,
            "last_forward_at": listener.last_forward_at,
            "seconds_since_forward": (
                round(time.time() - listener.last_forward_at, 3) if listener.last_forward_at else None
            ),
        }
        return (200 if role != "connecting" else 503), body

    async def _refresh(self) -> None:
        """Scrape-time figures from the database, on a short-lived connection of their own.
        (The bounds are timeout scopes, not ``wait_for``, which on Python 3.11 can swallow a
        cancellation that arrives as the call it bounds completes.)"""
        try:
            async with asyncio.timeout(5):
                conn = await db.connect(self.listener.database, "pgevents-metrics")
            async with conn:
                async with asyncio.timeout(5):
                    lag = await log.lag(conn)
            self._scraped = {
                "lag": lag.oldest_pending_seconds or 0.0,
                "pending": float(lag.pending),
                "queue": lag.notify_queue_usage,
            }
        except Exception as exc:  # the metrics still answer; the gauges go missing
            logger.warning("could not read listener lag from the database: %s", exc)
            self._scraped = {}

    def _gauges(self) -> list[tuple[str, str, list[str], list[tuple[list[str], float]]]]:
        s = self._scraped
        out: list[tuple[str, str, list[str], list[tuple[list[str], float]]]] = []
        if "lag" in s:
            out += [
                (
                    "pgevents_listener_lag_seconds",
                    "Age of the oldest committed event not yet forwarded.",
                    [],
                    [([], s["lag"])],
                ),
                (
                    "pgevents_events_pending",
                    "Committed events not yet positioned and forwarded.",
                    [],
                    [([], s["pending"])],
                ),
                (
                    "pgevents_notification_queue_usage",
                    "pg_notification_queue_usage(): fraction of the NOTIFY queue in use.",
                    [],
                    [([], s["queue"])],
                ),
            ]
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):  # a scope, not wait_for: see ``_refresh``
                request = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path == "/health":
                status, state = self.state()
                ctype, body = "application/json", json.dumps(state).encode()
            elif path == "/metrics" and _peer(writer) not in conf.get().metrics_ips:
                status, ctype, body = 403, "text/plain", b"forbidden\n"
            elif path == "/metrics":
                await self._refresh()
                try:
                    body, ctype = metrics.exposition()
                    status = 200
                except RuntimeError as exc:  # pragma: no cover - only without the optional prometheus-client
                    status, ctype, body = 501, "text/plain", f"{exc}\n".encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + (body if method != "HEAD" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def _peer(writer: asyncio.StreamWriter) -> str | None:
    """The client's address (an IPv6 peer's scope id dropped), as ``METRICS_IPS`` lists it."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]).partition("%")[0] if isinstance(peer, tuple) and peer else None


_REASONS = {
    200: "OK",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    501: "Not Implemented",
    503: "Service Unavailable",
}
