"""What the embedded listener of a runtime leaves behind when the runtime's event loop ends.

With the in-memory channel layer each runtime runs a listener on its own loop. A loop that
ends and is closed must not leave that listener's connection open on the server.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from pgevents.delivery import runtime


@pytest.fixture
def embedded() -> Iterator[None]:
    with override_settings(PGEVENTS={**settings.PGEVENTS, "EMBEDDED_LISTENER": True}):
        yield


@pytest.fixture
def no_collector() -> Iterator[None]:
    """As in a serving process, which freezes its objects: the test sees what the runtime
    closes itself, not what a collection happens to."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _listener_pids(pg: psycopg.Connection[Any]) -> set[int]:
    rows = pg.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pgevents-embedded%'").fetchall()
    return {int(row[0]) for row in rows}


def _gone(pg: psycopg.Connection[Any], pids: set[int]) -> bool:
    deadline = time.monotonic() + 10
    while True:
        row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchone()
        if row is not None and row[0] == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _serve(pg: psycopg.Connection[Any], before: set[int]) -> Callable[[], Coroutine[Any, Any, set[int]]]:
    """Use the loop's runtime as a subscription would; the backend pids of its listener."""

    async def body() -> set[int]:
        runtime.current()
        deadline = time.monotonic() + 10
        while not (_listener_pids(pg) - before) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return _listener_pids(pg) - before

    return body


def _with_asyncio_run(body: Callable[[], Coroutine[Any, Any, set[int]]]) -> set[int]:
    """As ``async_to_sync`` does: the loop's tasks are cancelled and awaited before it closes."""
    return asyncio.run(body())


def _closed_without_cancelling(body: Callable[[], Coroutine[Any, Any, set[int]]]) -> set[int]:
    """A loop its owner ran and closed itself: the listener's task never runs again."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(body())
    finally:
        loop.close()


@pytest.mark.parametrize("run", [_with_asyncio_run, _closed_without_cancelling], ids=["run", "close"])
def test_the_embedded_listener_of_a_dropped_runtime_closes_its_connection(
    pg: psycopg.Connection[Any],
    embedded: None,
    no_collector: None,
    run: Callable[[Callable[[], Coroutine[Any, Any, set[int]]]], set[int]],
) -> None:
    before = _listener_pids(pg)
    pids = run(_serve(pg, before))
    assert pids, "the embedded listener never connected"
    runtime.hubs()  # drops the runtime of the closed loop
    assert _gone(pg, pids), "the dropped runtime's listener connection is still open"
