"""Edges of the web side, against the real server: answers instead of server errors.

Filters nested too deeply, WebSocket paths no route matches, origins that are not the
page's own, rows nested deeper than ``json`` decodes on a filtered subscription, and a
database that accepts connections but never answers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import websockets

from tests.support import Client, Stack, execute, free_port, run, temp_table, wait_until

DEEP = 3000
DEEP_FILTER = "[" * DEEP + "]" * DEEP  # as a script would send it (percent-encoded, it passes 16 KiB)


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_deeply_nested_sse_filter_is_a_bad_request(stack: Stack) -> None:
    status, body = get(f"{stack.http}/pgevents/sse/people/?filter={DEEP_FILTER}")
    assert status == 400 and body["code"] == "bad_request" and "filter" in body["message"]


def test_a_deeply_nested_websocket_filter_is_a_bad_request(stack: Stack) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/?filter={DEEP_FILTER}") as client:
            error = await client.expect("error")
            assert error["code"] == "bad_request" and "filter" in error["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400

    run(scenario())


@pytest.mark.parametrize("path", ["/ws/other/", "/ws/pgevents/chaos.a%2Fb/", "/ws/pgevents/a/b/c/", "/"])
def test_unrouted_websocket_paths_are_refused_quietly(stack: Stack, path: str) -> None:
    assert stack.daphne is not None
    before = stack.daphne.output()

    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with Client.connect(f"{stack.ws}{path}"):
                pass
        assert refused.value.response.status_code == 403

    run(scenario())
    wait_until(lambda: len(stack.daphne.output()) > len(before), 10, what="daphne to log the refusal")
    logged = stack.daphne.output()[len(before) :]
    assert "Traceback" not in logged and " 500" not in logged and "No route found" not in logged


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1:6666",  # another application on the same host
        "http://localhost:{port}",  # another host name, though ALLOWED_HOSTS lists it
    ],
)
def test_origins_other_than_the_pages_own_are_refused(stack: Stack, origin: str) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/", origin=origin.format(port=stack.port)):
                pass
        assert refused.value.response.status_code == 403

    run(scenario())


def test_pgevents_lines_are_logged_once(stack: Stack) -> None:
    marker = f"http://once-{free_port()}.example"

    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus):
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/", origin=marker):
                pass

    run(scenario())
    assert stack.daphne is not None
    wait_until(lambda: marker in stack.daphne.output(), 10, what="the refusal to be logged")
    assert stack.daphne.output().count(marker) == 1


def test_filtered_subscriptions_decide_deeply_nested_rows(stack: Stack, db_url: str) -> None:
    """A row nested deeper than ``json`` decodes is judged by the filter, and the rest of its
    batch arrives with it: nothing waits for the next event, nothing is skipped silently."""
    ddl = "CREATE TABLE deep_rows (id serial PRIMARY KEY, kind text, doc jsonb)"
    deep_doc = "[" * DEEP + "]" * DEEP
    with temp_table(db_url, ddl, "deep_rows"):
        with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
            from pgevents.setup import installation

            installation.install(cur, installation.build_spec(cur, table="deep_rows", channel="t.deep"))

        async def scenario() -> None:
            url = f"{stack.ws}/ws/pgevents/t.deep/?filter=" + quote(json.dumps({"kind": "a"}))
            async with Client.connect(url) as client:
                await client.expect("subscribed")
                insert = "INSERT INTO deep_rows (kind, doc) VALUES (%s, %s::jsonb)"
                with psycopg.connect(db_url) as conn:  # one transaction: one batch
                    for kind, doc in [("a", deep_doc), ("b", deep_doc), ("a", "1")]:
                        conn.execute(insert, (kind, doc))
                frames = [await asyncio_recv(client) for _ in range(2)]
                assert deep_doc in frames[0] and '"kind": "a"' in frames[0]
                assert '"doc": 1' in frames[1]
                execute(db_url, "UPDATE deep_rows SET kind = 'b' WHERE doc = '1'::jsonb")
                leave = json.loads(await asyncio_recv(client))
                assert leave["type"] == "leave" and leave["row"]["kind"] == "a"

        run(scenario())


async def asyncio_recv(client: Client) -> str:
    """The next frame as text (a deep row is more than the test's own json.loads can take)."""
    import asyncio

    return str(await asyncio.wait_for(client.ws.recv(), 15))


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung database server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_hung_database_gets_clients_a_clear_answer(stack: Stack) -> None:
    """Replays and column checks wait at most QUERY_TIMEOUT per attempt (and for their turn
    on the shared connection), then the client hears ``unavailable``; before, they waited
    forever."""
    env = {"PGEVENTS_REDIS_PREFIX": f"hung-{free_port()}", "PGEVENTS_TEST_QUERY_TIMEOUT": "1"}
    with blackhole() as port, Stack(f"postgresql://postgres@127.0.0.1:{port}/hung", listener=False, env=env) as hung:

        async def scenario() -> None:
            async with Client.connect(f"{hung.ws}/ws/pgevents/people/") as client:
                await client.send({"type": "subscribe", "channel": "people"})
                error = await client.expect("error", timeout=10)
                assert error["code"] == "unavailable" and error["retrying"] is True
                await client.send({"type": "subscribe", "channel": "people", "filter": {"name": "x"}})
                error = await client.expect("error", timeout=10)
                assert error["code"] == "unavailable" and "retrying" not in error

        run(scenario())
        status, body = get(f"{hung.http}/pgevents/sse/people/?filter=" + quote(json.dumps({"name": "x"})))
        assert status == 503 and body["code"] == "unavailable"
