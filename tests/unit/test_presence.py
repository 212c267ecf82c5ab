"""The presence reporter writes a process's subscription counts, and survives the database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest

from pgevents.delivery import presence


class Connection:
    """Stands in for the process's shared connection: fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.calls: list[dict[str, int]] = []

    async def run(self, fn: Any, process: str, counts: dict[str, int]) -> None:
        self.calls.append(counts)
        if self.down:
            raise psycopg.OperationalError("database unreachable")


def test_counts_are_written_on_change_and_a_failing_database_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(presence, "CHECK_INTERVAL", 0.01)
    counter = iter(range(1000))

    async def body() -> None:
        connection = Connection()
        reporter = presence.Reporter(lambda: {"c": next(counter) // 2}, connection)  # type: ignore[arg-type]
        task = asyncio.ensure_future(reporter.run())
        while len(connection.calls) < 3:
            await asyncio.sleep(0.01)
        connection.down = False
        while len(connection.calls) < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        assert [c["c"] for c in connection.calls[:3]] == [0, 1, 2]  # only when the counts changed

    with caplog.at_level(logging.WARNING, logger="pgevents.delivery.presence"):
        asyncio.run(body())
    assert len([r for r in caplog.records if "could not report" in r.getMessage()]) == 1
