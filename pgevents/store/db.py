"""Standalone psycopg connections built from Django's ``DATABASES``.

The listener and each server process need their own long-lived async connections (LISTEN
needs a session; Django's request connections come and go). Reusing Django's own
``get_connection_params`` means the same host, credentials and options, and under
pytest-django the test database, with no extra wiring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from django.db import connections

from pgevents import conf

#: TCP keepalives let the kernel notice a dead peer even when the connection is idle.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def connection_params(alias: str | None = None) -> dict[str, Any]:
    """psycopg ``connect()`` keyword arguments for a Django database alias."""
    wrapper = connections[alias or conf.get().database]
    if wrapper.vendor != "postgresql":
        raise psycopg.ProgrammingError(f"database {wrapper.alias!r} is {wrapper.vendor}, pgevents needs PostgreSQL")
    params = dict(wrapper.get_connection_params())
    for key in ("cursor_factory", "context", "server_side_binding", "prepare_threshold"):
        params.pop(key, None)
    params.setdefault("application_name", "pgevents")
    if not str(params.get("host") or "").startswith("/"):
        for key, value in KEEPALIVES.items():
            params.setdefault(key, value)
    return params


async def connect(alias: str | None = None, application_name: str = "pgevents") -> psycopg.AsyncConnection[Any]:
    """A new autocommit async connection in UTC (event timestamps are rendered in UTC)."""
    params = connection_params(alias)
    params["application_name"] = application_name
    conn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


def finish(conn: psycopg.AsyncConnection[Any] | None) -> None:
    """Close ``conn`` without awaiting anything: its event loop is already closed.

    ``close()`` needs the loop the connection was opened on. Once that loop is closed
    nothing can run there, and the connection would stay open on the server until the
    garbage collector happened to reach it (never, for what a serving process froze).
    libpq's ``finish()`` is synchronous: it says goodbye to the server and closes the socket.
    """
    if conn is not None and not conn.closed:
        try:
            conn.pgconn.finish()
        except (psycopg.Error, OSError):  # pragma: no cover - the socket was already gone
            pass


Query = Callable[..., Awaitable[Any]]


class SharedConnection:
    """One connection a whole server process shares for short statements, reconnected on failure.

    Replays, head reads and presence reports are short indexed statements; serialising them
    on one connection keeps the database's connection count independent of the number of
    browsers. Every attempt (the connect included) is bounded by ``QUERY_TIMEOUT``, and so is
    the wait for the connection behind other callers: a server that accepts connections but
    never answers raises ``TimeoutError`` instead of holding every caller in a queue.

    The bounds are ``asyncio.timeout`` blocks, not ``asyncio.wait_for``: on Python 3.11,
    ``wait_for`` returns the result of an inner call that finished in the same turn as the
    caller was cancelled, and so swallows the cancellation. A caller cancelled just as the
    lock was handed to it then kept running (a runtime's presence reporter carried on past
    its loop's shutdown, and ``asyncio.run`` waited for it forever).
    """

    def __init__(self, application_name: str, alias: str | None = None) -> None:
        self.application_name = application_name
        self.alias = alias
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def run(self, fn: Query, *args: Any) -> Any:
        """``await fn(conn, *args)`` on the shared connection, reconnecting once if it broke."""
        timeout = conf.get().query_timeout
        async with asyncio.timeout(timeout):
            await self._lock.acquire()
        try:
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout(timeout):
                        return await self._attempt(fn, *args)
                except (TimeoutError, psycopg.OperationalError):
                    await self.close()
                    if attempt == 2:
                        raise
        finally:
            self._lock.release()
        raise AssertionError("unreachable")

    async def _attempt(self, fn: Query, *args: Any) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self.alias, self.application_name)
        return await fn(self._conn, *args)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except (psycopg.Error, OSError):  # pragma: no cover - closing a broken connection
                pass

    def abandon(self) -> None:
        """Close the connection once its event loop is closed (see ``finish``)."""
        conn, self._conn = self._conn, None
        finish(conn)
