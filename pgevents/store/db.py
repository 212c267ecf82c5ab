"""Standalone psycopg connections built from Django's ``DATABASES``.

The listener and the replay reader need their own long-lived async connections (LISTEN
needs a session; Django's request connections come and go). Reusing Django's own
``get_connection_params`` means the same host, credentials and options, and under
pytest-django the test database, with no extra wiring.
"""

from __future__ import annotations

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
