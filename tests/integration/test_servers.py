"""The delivery side under each ASGI server people deploy with: daphne, uvicorn, hypercorn,
and gunicorn with uvicorn workers.

daphne has a fast write path of its own; under the others everything must still hold:
live events and resume over WebSocket and SSE, and a client that stops reading (keeping its
connection) is cut off with a resume hint while the other clients of its channel get
everything, promptly — one slow reader never holds up the fan-out. The cut-off clients then
resume from their last id and lose nothing.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import Client, RawStream, Stack, run, wait_until

ROWS = 400
ROW_BYTES = 20_000  # ~8 MB in all: past the 1 MiB limit and the kernel's socket buffers
#: Linux's SO_RCVBUFFORCE (``socket`` does not name it): a receive buffer past ``rmem_max``.
SO_RCVBUFFORCE = 33


@pytest.fixture(scope="module", params=["daphne", "uvicorn", "hypercorn", "gunicorn"])
def server(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Stack]:
    """The shared daphne stack, or another server on the same database and listener."""
    if request.param == "daphne":
        yield stack
        return
    env = {"PGEVENTS_REDIS_PREFIX": stack.env["PGEVENTS_REDIS_PREFIX"]}  # the shared stack's listener
    with Stack(stack.db_url, listener=False, server=request.param, env=env) as other:
        yield other


def test_live_events_and_resume(server: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{server.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO people (name) VALUES ('srv-1'), ('srv-2')")
            first, _ = await client.events(2)
        pg.execute("INSERT INTO people (name) VALUES ('srv-3')")
        async with Client.connect(f"{server.ws}/ws/pgevents/people/?last_event_id={first['id']}") as client:
            await client.expect("subscribed")
            assert [e["row"]["name"] for e in await client.events(2)] == ["srv-2", "srv-3"]

        sse = RawStream.sse(server, "/pgevents/sse/people/", last_event_id=first["id"], rcvbuf=None)
        try:
            sse.read_until(b'"srv-3"')
            assert sse.data.count(b'"srv-') == 2 and b"text/event-stream" in sse.data
        finally:
            sse.close()

    run(scenario())


def _roomy_socket(server: Stack) -> socket.socket:
    """A connection to ``server`` whose receive buffer takes the whole burst.

    The healthy reader reads as fast as the test process is scheduled. On a loaded machine
    that process can sit still long enough for the server to hold a MiB for it, and the
    server rightly cuts it off as too slow: a fact about the scheduler, not about the fan-out.
    With room for the burst in its kernel buffer the server never holds anything for it.
    """
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 * ROWS * ROW_BYTES)
    except PermissionError:  # not privileged: as much as rmem_max allows
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * ROWS * ROW_BYTES)
    sock.connect(("127.0.0.1", server.port))
    return sock


async def _quiet_head(server: Stack, pg: psycopg.Connection) -> int:
    """The id of a row written now, once it arrived: whatever earlier tests wrote to the
    channel (such as a previous run's 400 deletes) was delivered before it and cannot reach
    the clients this test opens afterwards."""
    name = f"srv-fence-{time.monotonic_ns()}"
    async with Client.connect(f"{server.ws}/ws/pgevents/people/", sock=_roomy_socket(server)) as client:
        await client.expect("subscribed")
        pg.execute("INSERT INTO people (name) VALUES (%s)", (name,))
        while True:
            event = await client.expect("event", timeout=90)
            if (event.get("row") or {}).get("name") == name:
                return int(event["id"])


def test_a_stalled_reader_is_cut_off_resumes_and_holds_up_no_one(server: Stack, pg: psycopg.Connection) -> None:
    assert server.daphne is not None
    log = server.daphne.output
    ws_cut, sse_cut = log().count("closing a WebSocket that stopped reading"), log().count("ending an SSE stream")
    head = run(_quiet_head(server, pg))
    stalled_ws = RawStream.websocket(server, "/ws/pgevents/people/")
    stalled_sse = RawStream.sse(server, "/pgevents/sse/people/")
    stalled_ws.read_until(b'"subscribed"')
    stalled_sse.read_until(b'"subscribed"')

    async def reader() -> list[int]:
        async with Client.connect(f"{server.ws}/ws/pgevents/people/", sock=_roomy_socket(server)) as client:
            await client.expect("subscribed")
            pg.execute(
                "INSERT INTO people (name) SELECT repeat('x', %s) || g FROM generate_series(1, %s) g",
                (ROW_BYTES, ROWS),
            )
            return [e["id"] for e in await client.events(ROWS, timeout=90)]

    try:
        ids = run(reader())  # everything, while two clients on the channel read nothing
        assert ids == sorted(ids) and len(set(ids)) == ROWS and ids[0] > head
        wait_until(lambda: log().count("closing a WebSocket that stopped reading") > ws_cut, 30, what="ws cut")
        wait_until(lambda: log().count("ending an SSE stream") > sse_cut, 30, what="SSE cut")

        # Each stalled client finds, behind what was already on its way, the resume hint.
        for stalled in (stalled_ws, stalled_sse):
            stalled.read_until(b'"too_slow"', timeout=90)  # a few MB, read 4 KiB at a time
            got = stalled.ids()
            assert got == ids[: len(got)] and len(got) < ROWS  # in order, and really cut short

        # Resuming from the last id each one got loses nothing and repeats nothing.
        after_ws = stalled_ws.ids()[-1] if stalled_ws.ids() else head
        after_sse = stalled_sse.ids()[-1] if stalled_sse.ids() else head

        async def resume_ws() -> list[int]:
            async with Client.connect(f"{server.ws}/ws/pgevents/people/?last_event_id={after_ws}") as client:
                await client.expect("subscribed")
                return [e["id"] for e in await client.events(len([i for i in ids if i > after_ws]), timeout=90)]

        assert run(resume_ws()) == [i for i in ids if i > after_ws]
        resumed = RawStream.sse(server, "/pgevents/sse/people/", last_event_id=after_sse, rcvbuf=None)
        try:
            resumed.read_until(f'"id": {ids[-1]}, "op"'.encode(), timeout=90)
            assert resumed.ids() == [i for i in ids if i > after_sse]
        finally:
            resumed.close()
    finally:
        stalled_ws.close()
        stalled_sse.close()
        pg.execute("DELETE FROM people WHERE length(name) > %s OR name LIKE 'srv-fence-%%'", (ROW_BYTES,))


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (1: established, 7: closed, e.g. after a reset)."""
    return int(struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0])


@pytest.mark.parametrize("name", ["daphne", "uvicorn", "uvicorn-uvloop", "hypercorn"])
def test_a_client_that_does_not_even_read_its_goodbye_is_dropped(
    stack: Stack, pg: psycopg.Connection, name: str
) -> None:
    """After CLOSE_GRACE (1 s here) the server drops the TCP connection of a cut-off client
    that still has not read, rather than holding its buffers for as long as it keeps the
    connection open."""
    env = {"PGEVENTS_REDIS_PREFIX": stack.env["PGEVENTS_REDIS_PREFIX"], "PGEVENTS_TEST_CLOSE_GRACE": "1"}
    with Stack(stack.db_url, listener=False, server=name, env=env) as server:
        stalled = [RawStream.websocket(server, "/ws/pgevents/people/"), RawStream.sse(server, "/pgevents/sse/people/")]
        try:
            for client in stalled:
                client.read_until(b'"subscribed"')
            pg.execute(
                "INSERT INTO people (name) SELECT repeat('x', %s) || g FROM generate_series(1, %s) g",
                (ROW_BYTES, ROWS),
            )
            for client in stalled:
                wait_until(lambda c=client: _tcp_state(c.sock) == 7, 60, what=f"{name} to drop a stalled client")
        finally:
            for client in stalled:
                client.close()
            pg.execute("DELETE FROM people WHERE length(name) > %s", (ROW_BYTES,))
