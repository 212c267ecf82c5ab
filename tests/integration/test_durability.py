"""Nothing lost: durable delivery across crashes, restarts, disconnects and big rows.

Each scenario writes through real connections while something fails, then checks that every
committed row reached the client exactly once, in strictly increasing id order.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest

from tests.faults import PrivatePostgres, PrivateRedis
from tests.support import (
    ROOT,
    Client,
    Recorder,
    Stack,
    assert_exactly_once_in_order,
    base_env,
    committed_names,
    execute,
    run,
    write_rows,
)

pytestmark = pytest.mark.fault


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def _stream_with_fault(stack: Stack, url: str, tag: str, count: int, fault, *, at: int, outage: bool = False):
    """A live client records while ``count`` rows are written; ``fault()`` runs after ``at`` of them."""
    async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
        start = (await client.expect("subscribed"))["last_event_id"]
        recorder = Recorder(client)
        reached = threading.Event()
        writer = asyncio.ensure_future(
            asyncio.to_thread(
                write_rows, url, tag, count, progress=lambda n: n >= at and reached.set(), tolerate_outage=outage
            )
        )
        await asyncio.to_thread(reached.wait, 120)
        await asyncio.to_thread(fault)
        await writer
        expected = committed_names(url, tag)
        await recorder.wait_for(expected, timeout=90)
        await recorder.fence(url, f"{tag}-end")  # any duplicate or stray event shows up before it
        await recorder.stop()
        return start, recorder.events, expected


async def _fence(client: Client, url: str, tag: str) -> dict:
    """Write one more row and return it: it must be the client's next event."""
    await asyncio.to_thread(execute, url, f"INSERT INTO people (name) VALUES ('{tag}-fence')")
    (event,) = await client.events(1)
    assert event["row"]["name"] == f"{tag}-fence", event
    return event


def test_kill_9_listener_during_2000_inserts(fresh_stack: Stack, isolated_db: str) -> None:
    tag = _tag()

    def crash_and_restart() -> None:
        fresh_stack.listeners[0].signal(signal.SIGKILL)
        fresh_stack.listeners[0].proc.wait(10)
        fresh_stack.start_listener()

    async def scenario() -> None:
        start, live, expected = await _stream_with_fault(fresh_stack, isolated_db, tag, 2000, crash_and_restart, at=500)
        assert len(expected) == 2000
        assert_exactly_once_in_order(live, expected)
        # A client that was away the whole time resumes after its last id and gets all 2000.
        async with Client.connect(f"{fresh_stack.ws}/ws/pgevents/people/?last_event_id={start}") as resumer:
            await resumer.expect("subscribed")
            replayed = await resumer.events(2000, timeout=60)
            (fence,) = await resumer.events(1)  # the row that ended the live stream comes next
            assert fence["row"]["name"] == f"{tag}-end"
        assert_exactly_once_in_order(replayed, expected)
        assert [e["id"] for e in replayed] == [e["id"] for e in live]
        assert fence["id"] > replayed[-1]["id"]

    run(scenario())
    assert fresh_stack.listeners[0].proc.returncode == -signal.SIGKILL


@pytest.mark.timeout(300)
def test_postgresql_restart_during_a_stream() -> None:
    server = PrivatePostgres()
    try:
        url = server.migrate()
        with Stack(url) as stack:
            tag = _tag()

            async def scenario() -> None:
                _, live, expected = await _stream_with_fault(
                    stack, url, tag, 600, lambda: server.restart("fast"), at=200, outage=True
                )
                assert len(expected) >= 600
                assert_exactly_once_in_order(live, expected)

            run(scenario())
            assert "reconnecting" in stack.listeners[0].output()
    finally:
        server.close()


def test_redis_restart_during_a_stream(isolated_db: str) -> None:
    redis_server = PrivateRedis()
    try:
        with Stack(isolated_db, env={"REDIS_URL": redis_server.url}) as stack:
            tag = _tag()

            async def scenario() -> None:
                _, live, expected = await _stream_with_fault(
                    stack, isolated_db, tag, 600, lambda: redis_server.restart(1.0), at=200
                )
                assert_exactly_once_in_order(live, expected)

            run(scenario())
            assert stack.daphne is not None and "channel layer" in stack.daphne.output()
    finally:
        redis_server.stop()


def test_client_disconnect_and_resume_during_a_stream(stack: Stack, db_url: str) -> None:
    tag = _tag()

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as first:
            await first.expect("subscribed")
            halfway = threading.Event()
            writer = asyncio.ensure_future(
                asyncio.to_thread(
                    write_rows, db_url, tag, 600, threads=2, progress=lambda n: n >= 300 and halfway.set()
                )
            )
            before = [e for e in await first.events(100, timeout=60) if e["row"]["name"].startswith(tag)]
        last = before[-1]["id"]
        await asyncio.to_thread(halfway.wait, 60)  # away while rows keep coming
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as second:
            await second.subscribe("people", last_event_id=last)
            recorder = Recorder(second)
            await writer
            expected = committed_names(db_url, tag)
            await recorder.wait_for(expected - {e["row"]["name"] for e in before})
            await recorder.fence(db_url, f"{tag}-fence")
            await recorder.stop()
        combined = before + [e for e in recorder.events if e["row"]["name"].startswith(tag)]
        assert_exactly_once_in_order(combined, expected)

    run(scenario())


def test_transaction_that_started_first_but_committed_last_is_not_skipped(stack: Stack, db_url: str) -> None:
    tag = _tag()

    async def scenario() -> None:
        with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
            a.execute("INSERT INTO people (name) VALUES (%s)", (f"{tag}-A",))  # A takes its sequence value first
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
                await client.expect("subscribed")
                b.execute("INSERT INTO people (name) VALUES (%s)", (f"{tag}-B",))
                b.commit()
                (seen_b,) = await client.events(1)
            assert seen_b["row"]["name"] == f"{tag}-B"
            a.commit()
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/?last_event_id={seen_b['id']}") as client:
            await client.expect("subscribed")
            (seen_a,) = await client.events(1)
            await _fence(client, db_url, tag)
        assert seen_a["row"]["name"] == f"{tag}-A"
        assert seen_a["id"] > seen_b["id"]

    run(scenario())


def test_a_100_kb_row_is_delivered_whole_and_the_insert_succeeds(stack: Stack, pg: psycopg.Connection) -> None:
    big = "x" * 100_000 + "-end"

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO people (name) VALUES (%s)", (big,))
            (event,) = await client.events(1)
        assert event["row"]["name"] == big

    run(scenario())


def _sse(stack: Stack, path: str, headers: dict[str, str], count: int) -> list[tuple[str | None, str]]:
    """Read ``count`` events (id, data) from an SSE stream, skipping control messages."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    conn.request("GET", path, headers={"Accept": "text/event-stream", **headers})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    out: list[tuple[str | None, str]] = []
    current: dict[str, str] = {}
    while len(out) < count:
        line = response.readline().decode().rstrip("\n")
        if line == "":
            if "data" in current and current.get("event") != "control":
                out.append((current.get("id"), current["data"]))
            current = {}
        elif not line.startswith(":") and ": " in line:
            key, value = line.split(": ", 1)
            current[key] = value
    conn.close()
    return out


def test_sse_resume_with_last_event_id_returns_exactly_the_missed_events(stack: Stack, db_url: str) -> None:
    import json

    tag = _tag()

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            write_rows(db_url, tag, 4, threads=1)
            events = await client.events(4)
        first = events[0]["id"]
        got = await asyncio.to_thread(_sse, stack, "/pgevents/sse/people/", {"Last-Event-ID": str(first)}, 3)
        assert [int(i) for i, _ in got if i] == [e["id"] for e in events[1:]]
        assert [json.loads(d)["row"]["name"] for _, d in got] == [e["row"]["name"] for e in events[1:]]
        # ?last_event_id= works the same, for clients that cannot set headers
        again = await asyncio.to_thread(_sse, stack, f"/pgevents/sse/people/?last_event_id={events[2]['id']}", {}, 1)
        assert [int(i) for i, _ in again if i] == [events[3]["id"]]

    run(scenario())


def test_resume_from_a_pruned_id_gets_an_explicit_reset(
    fresh_stack: Stack, iso_pg: psycopg.Connection, isolated_db: str
) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{fresh_stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            for name in ("old-1", "old-2", "old-3"):
                iso_pg.execute("INSERT INTO people (name) VALUES (%s)", (name,))
            old = await client.events(3)
            iso_pg.execute("INSERT INTO people (name) VALUES ('nudge')")  # moves the published cursor
            await client.events(1)
        result = subprocess.run(
            [sys.executable, "manage.py", "pgevents_log", "prune", "--older-than", "0"],
            cwd=ROOT,
            env=base_env(isolated_db),
            capture_output=True,
            text=True,
            check=True,
        )
        assert "pruned" in result.stdout
        async with Client.connect(f"{fresh_stack.ws}/ws/pgevents/people/?last_event_id={old[0]['id']}") as client:
            subscribed = await client.expect("subscribed")
            reset = await client.expect("reset")
            assert reset["channel"] == "people" and reset["last_event_id"] >= old[-1]["id"]
            assert subscribed["last_event_id"] == old[0]["id"]
            iso_pg.execute("INSERT INTO people (name) VALUES ('after-reset')")
            (event,) = await client.events(1)
            assert event["row"]["name"] == "after-reset"

    run(scenario())
    status = subprocess.run(
        [sys.executable, "manage.py", "pgevents_log", "status", "--json"],
        cwd=ROOT,
        env=base_env(isolated_db),
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"pruned"' in status.stdout
