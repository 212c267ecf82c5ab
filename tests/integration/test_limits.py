"""Origins and slow clients on a server with an explicit origin list and a small send buffer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import websockets

from pgevents.setup import installation
from tests.support import Client, Stack, execute, run, wait_until

TRUSTED = "http://trusted.example"


@pytest.fixture(scope="module")
def strict(stack: Stack, db_url: str) -> Iterator[Stack]:
    """A second daphne with ALLOWED_ORIGINS = [TRUSTED] and MAX_SEND_BUFFER = 64 KiB (see
    tests/settings.py), fed by the shared stack's listener (one listener per database)."""
    env = {"PGEVENTS_TEST_STRICT": "1", "PGEVENTS_REDIS_PREFIX": stack.env["PGEVENTS_REDIS_PREFIX"]}
    with Stack(db_url, listener=False, env=env) as running:
        yield running


def test_only_listed_origins_may_open_a_websocket(strict: Stack) -> None:
    url = f"{strict.ws}/ws/pgevents/people/"

    async def scenario() -> None:
        async with Client.connect(url, origin=TRUSTED) as client:
            await client.expect("subscribed")
        for origin in ["http://evil.example", strict.http, "http://trusted.example.evil.example", "null"]:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with Client.connect(url, origin=origin):
                    pass
            assert refused.value.response.status_code == 403, origin
        with pytest.raises(websockets.InvalidStatus) as no_origin:  # scripts must say where they come from
            async with websockets.connect(url, open_timeout=20):
                pass
        assert no_origin.value.response.status_code == 403

    run(scenario())


def test_a_client_that_stops_reading_is_closed_while_others_keep_receiving(strict: Stack, db_url: str) -> None:
    execute(db_url, "DROP TABLE IF EXISTS sec_big", "CREATE TABLE sec_big (id serial PRIMARY KEY, body text)")
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        installation.install(cur, installation.build_spec(cur, table="sec_big", channel="sec.big"))
    count = 80  # ~100 KB each: far more than the socket buffers and MAX_SEND_BUFFER together
    url = f"{strict.ws}/ws/pgevents/sec.big/"

    async def scenario() -> None:
        # The slow client's kernel receive buffer is small and fixed, and it reads nothing.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.connect(("127.0.0.1", strict.port))
        async with (
            Client.connect(url, origin=TRUSTED) as fast,
            Client.connect(url, origin=TRUSTED, sock=sock, max_queue=1) as slow,
        ):
            await fast.expect("subscribed")
            await slow.expect("subscribed")
            execute(db_url, f"INSERT INTO sec_big (body) SELECT repeat('x', 100000) FROM generate_series(1, {count})")
            got = await fast.events(count, timeout=120)
            assert [len(e["row"]["body"]) for e in got] == [100000] * count
            assert strict.daphne is not None
            wait_until(lambda: "stopped reading" in strict.daphne.output(), 60, what="the slow client to be closed")
            # Now the slow client reads: what was already on its way, then the close.
            seen = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    seen.append(await slow.recv())
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
            assert seen[-1]["type"] == "error" and seen[-1]["code"] == "too_slow"
            events = seen[:-1]
            assert len(events) < count
        # It resumes from the last id it saw and gets the rest, without loss or duplicates.
        last = events[-1]["id"] if events else got[0]["id"] - 1
        async with Client.connect(f"{url}?last_event_id={last}", origin=TRUSTED) as resumed:
            await resumed.expect("subscribed")
            rest = await resumed.events(count - len(events), timeout=120)
        assert [e["id"] for e in events + rest] == [e["id"] for e in got]

    try:
        run(scenario())
    finally:
        execute(db_url, "DROP TABLE sec_big")
