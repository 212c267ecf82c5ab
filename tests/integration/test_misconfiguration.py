"""Nothing silent: what runlisten says at start, and what a client is told when no listener
feeds its server. Real runlisten processes, Redis, daphne and clients."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys

import psycopg

from tests.support import ROOT, Client, Process, Stack, base_env, free_port, run, wait_until


def runlisten(stack: Stack, **env: str) -> Process:
    return Process("runlisten", [sys.executable, "manage.py", "runlisten"], {**stack.env, **env}, stack.log_dir)


def ready_line(proc: Process) -> str:
    wait_until(lambda: "runlisten ready" in proc.output() or not proc.alive(), 30, what="the ready line")
    return next(line for line in proc.output().splitlines() if line.startswith("runlisten ready"))


def test_runlisten_says_what_it_runs_and_its_role(isolated_db: str) -> None:
    stack = Stack(isolated_db, listener=False)  # its environment: a database and a Redis prefix of their own
    name = isolated_db.rsplit("/", 1)[1]
    first = runlisten(stack)
    second = None
    try:
        line = ready_line(first)
        assert line.startswith("runlisten ready, role active. ")
        assert f"Database '{name}' on 127.0.0.1:5432 as postgres (alias 'default')" in line
        assert (
            "channel layer 'default' (pgevents.layers.PubSubChannelLayer at redis://127.0.0.1:6379/0), checked" in line
        )
        assert "plain NOTIFY channels: people, demo, chat, Mixed Case, sp ace, q'uote, ünï;" in line
        assert line.endswith(f"process {socket.gethostname()}:{first.proc.pid}.")
        second = runlisten(stack)
        assert ready_line(second).startswith(
            "runlisten ready, role standby (another listener is active; this one takes over when it stops)."
        )
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.stop()


def test_runlisten_fails_at_start_on_an_unreachable_channel_layer(isolated_db: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "manage.py", "runlisten"],
        cwd=ROOT,
        env=base_env(isolated_db, REDIS_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        f"CommandError: The channel layer 'default' (pgevents.layers.PubSubChannelLayer at {url}) did not answer"
        in (result.stderr)
    )
    assert "is Redis running at that address?" in result.stderr
    assert "runlisten ready" not in result.stdout


def test_clients_are_told_when_no_listener_feeds_their_server(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """With STALL_TIMEOUT = 1 s: the listener stops, every connection (WebSocket and SSE) gets
    ``pipeline: no_listener``; it comes back, they get ``pipeline: ok`` and what was written meanwhile."""
    with Stack(isolated_db, env={"PGEVENTS_TEST_STALL": "1"}) as stack:
        sse = _SseStream(stack.port, "/pgevents/sse/people/")

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
                await client.subscribe("people")
                assert sse.next_message()["type"] == "subscribed"
                stack.listeners[0].stop()
                assert await client.recv() == {"type": "pipeline", "state": "no_listener", "lag": None}
                assert sse.next_message() == {"type": "pipeline", "state": "no_listener", "lag": None}
                iso_pg.execute("INSERT INTO people (name) VALUES ('written while nobody listened')")
                stack.start_listener()
                got = [await client.recv(), await client.recv()]
                ok = {"type": "pipeline", "state": "ok", "lag": 0.0}
                assert ok in got
                (event,) = [m for m in got if m["type"] == "event"]
                assert event["row"]["name"] == "written while nobody listened"
                assert ok in [sse.next_message(), sse.next_message()]

        try:
            run(scenario())
        finally:
            sse.close()


def test_a_new_connection_to_a_server_without_listener_is_told_at_once(isolated_db: str) -> None:
    with Stack(isolated_db, listener=False, env={"PGEVENTS_TEST_STALL": "1"}) as stack:

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/") as first:
                await first.subscribe("people")  # starts the server's hub: it waits one STALL_TIMEOUT
                assert await first.recv() == {"type": "pipeline", "state": "no_listener", "lag": None}
                async with Client.connect(f"{stack.ws}/ws/pgevents/") as later:
                    await later.send({"type": "subscribe", "channel": "people"})
                    got = [await later.recv(), await later.recv()]
                    assert {"type": "pipeline", "state": "no_listener", "lag": None} in got
                    assert {m["type"] for m in got} == {"pipeline", "subscribed"}

        run(scenario())
        assert stack.daphne is not None
        assert "delivery has no active listener" in stack.daphne.output()


class _SseStream:
    """A raw SSE client: every ``data:`` line, control messages included."""

    def __init__(self, port: int, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200

    def next_message(self) -> dict[str, object]:
        while True:
            line = self.response.readline().decode()
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))

    def close(self) -> None:
        self.conn.close()
