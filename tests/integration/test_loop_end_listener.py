"""What the embedded listener of a runtime leaves behind when the runtime's event loop ends.

With the in-memory channel layer each runtime runs a listener on its own loop. A loop that
ends and is closed must not leave that listener's connection open on the server.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from pgevents.delivery import runtime
from tests.integration.test_handover import RecordingLayer, _flag, _listener, _wait_for


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


def _backends(conn: psycopg.Connection[Any]) -> set[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
    ).fetchall()
    return {int(row[0]) for row in rows}


def test_an_abandoned_listener_closes_its_session_and_hand_over_connections(
    isolated_db: str, no_collector: None
) -> None:
    """Its loop is closed while the listener waits, on its second connection, for a writer's
    transaction to end (the hand-over): neither connection may outlive ``abandon()``."""
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.2)
    with (
        psycopg.connect(isolated_db, autocommit=True) as owner,
        psycopg.connect(isolated_db, autocommit=True) as writer,
    ):
        ours = _backends(owner)
        loop = asyncio.new_event_loop()
        task = loop.create_task(listener.run())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            _wait_for(lambda: listener.active, "the listener to be active")
            # Active comes before the catch-up's look: a row committed during that look is
            # positioned by it, and its wake-up then finds nothing, which never makes the
            # listener poll. Write once the catch-up has looked (its last drain is noted).
            _wait_for(lambda: listener._last_drain > 0, "the listener's catch-up")
            owner.execute("INSERT INTO people (name) VALUES ('wakes it')")
            _wait_for(lambda: _flag(owner) != 0, "the listener to poll")
            with writer.transaction():
                writer.execute("INSERT INTO people (name) VALUES ('late')")
                _wait_for(lambda: len(_backends(owner) - ours) == 2, "the hand-over's connection")
                listeners = _backends(owner) - ours
            _wait_for(lambda: layer.names() == ["wakes it", "late"], "the late event")
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()  # the listener's task is neither cancelled nor awaited
        assert not task.done()
        assert _backends(owner) - ours == listeners  # closed by nothing else
        listener.abandon()
        assert _gone(owner, listeners), "the abandoned listener's connections are still open"
