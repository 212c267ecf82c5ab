"""A server process's shared connection: reconnects once after a failure, then gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from pgevents.store.db import SharedConnection


def test_a_broken_connection_is_replaced_once_and_a_hung_call_times_out(db_url: str) -> None:
    async def body() -> None:
        shared = SharedConnection("pgevents-test")
        pids: list[int] = []

        async def breaks_once(conn: psycopg.AsyncConnection[Any]) -> int:
            pids.append(conn.info.backend_pid)
            if len(pids) == 1:
                await conn.close()  # the connection died under the call
                raise psycopg.OperationalError("connection lost")
            cur = await conn.execute("SELECT 1")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

        assert await shared.run(breaks_once) == 1 and pids[0] != pids[1]

        async def hangs(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("SELECT pg_sleep(5)")

        with override_settings(PGEVENTS={**settings.PGEVENTS, "QUERY_TIMEOUT": 0.2}), pytest.raises(TimeoutError):
            await shared.run(hangs)
        await shared.close()
        await shared.close()  # closing twice is harmless

    asyncio.run(body())
