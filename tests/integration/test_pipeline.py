"""The core pipeline end to end: a writer outside Django → trigger → runlisten → Redis →
daphne → a real WebSocket client, in the contract's envelope."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import websockets

from tests.support import ROOT, Client, Stack, base_env, execute, run, wait_until

ENVELOPE_KEYS = {"type", "channel", "id", "op", "schema", "table", "row", "old", "at"}


def test_insert_update_delete_and_plain_notify_arrive_as_envelopes(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO people (name, age, height) VALUES ('Paul', 51, 1.9)")
            pg.execute("UPDATE people SET age = 52 WHERE name = 'Paul'")
            pg.execute("DELETE FROM people WHERE name = 'Paul'")
            inserted, updated, deleted = await client.events(3)
            pg.execute("NOTIFY people, 'hello'")
            (plain,) = await client.events(1)

        for event in (inserted, updated, deleted):
            assert set(event) >= ENVELOPE_KEYS, event
            assert (event["channel"], event["schema"], event["table"]) == ("people", "public", "people")
            assert event["at"].endswith("Z")
        assert inserted["op"] == "INSERT" and inserted["old"] is None
        assert inserted["row"]["name"] == "Paul" and inserted["row"]["age"] == 51
        assert inserted["row"]["height"] == pytest.approx(1.9)
        assert set(inserted["row"]) == {"pk", "ts", "name", "age", "height"}
        assert updated["op"] == "UPDATE" and updated["old"]["age"] == 51 and updated["row"]["age"] == 52
        assert deleted["op"] == "DELETE" and deleted["row"] is None and deleted["old"]["age"] == 52
        assert inserted["id"] < updated["id"] < deleted["id"]
        assert plain["payload"] == "hello" and plain["id"] is None and plain["op"] is None
        assert plain["channel"] == "people" and set(plain) >= ENVELOPE_KEYS

    run(scenario())


def test_json_notify_payload_is_relayed_raw(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/demo/") as client:
            await client.expect("subscribed")
            pg.execute("SELECT pg_notify('demo', '{\"a\":1}')")
            (event,) = await client.events(1)
        assert event["payload"] == '{"a":1}'
        assert json.loads(event["payload"]) == {"a": 1}

    run(scenario())


def test_multiplexed_subscribe_and_unsubscribe(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            await client.subscribe("people")
            await client.subscribe("demo")
            pg.execute("INSERT INTO people (name) VALUES ('multi')")
            pg.execute("NOTIFY demo, 'x'")
            got = await client.events(2)
            assert {e["channel"] for e in got} == {"people", "demo"}
            await client.send({"type": "unsubscribe", "channel": "people"})
            assert await client.expect("unsubscribed") == {"type": "unsubscribed", "channel": "people"}
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as watcher:
                await watcher.expect("subscribed")
                pg.execute("INSERT INTO people (name) VALUES ('after-unsubscribe')")
                pg.execute("NOTIFY demo, 'still here'")
                (only,) = await client.events(1)
                assert only["channel"] == "demo" and only["payload"] == "still here"
                (seen,) = await watcher.events(1)  # the server has dispatched the people event...
                assert seen["row"]["name"] == "after-unsubscribe"
                await client.pong()  # ...and wrote nothing of it to the unsubscribed client

    run(scenario())


def test_truncate_is_an_event(stack: Stack, db_url: str) -> None:
    execute(db_url, "CREATE TABLE IF NOT EXISTS trunc_me (id serial primary key, v text)")
    with psycopg.connect(db_url, autocommit=True) as conn:
        from pgevents.setup import installation

        with conn.cursor() as cur:
            installation.install(cur, installation.build_spec(cur, table="trunc_me", channel="demo"))

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/demo/") as client:
            await client.expect("subscribed")
            execute(db_url, "INSERT INTO trunc_me (v) VALUES ('a')", "TRUNCATE trunc_me")
            inserted, truncated = await client.events(2)
        assert inserted["op"] == "INSERT" and truncated["op"] == "TRUNCATE"
        assert truncated["row"] is None and truncated["table"] == "trunc_me"

    try:
        run(scenario())
    finally:
        execute(db_url, "DROP TABLE trunc_me")


def test_several_clients_receive_the_same_events(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/people/") as a,
            Client.connect(f"{stack.ws}/ws/pgevents/people/") as b,
        ):
            await a.expect("subscribed")
            await b.expect("subscribed")
            pg.execute("INSERT INTO people (name) VALUES ('both')")
            (ea,) = await a.events(1)
            (eb,) = await b.events(1)
        assert ea == eb and ea["row"]["name"] == "both"

    run(scenario())


def test_errors_for_bad_messages_and_channels_keep_the_socket_usable(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            for bad, code in [
                ("not json", "bad_request"),
                ("[1, 2]", "bad_request"),
                ({"type": "dance"}, "bad_request"),
                ({"type": "subscribe"}, "bad_request"),
                ({"type": "subscribe", "channel": "nope"}, "unknown_channel"),
                ({"type": "subscribe", "channel": "people", "last_event_id": -1}, "bad_request"),
                ({"type": "unsubscribe", "channel": "people"}, "not_subscribed"),
            ]:
                await client.send(bad)
                error = await client.expect("error")
                assert error["code"] == code, (bad, error)
                assert error["message"]
            await client.subscribe("people")
            pg.execute("INSERT INTO people (name) VALUES ('still works')")
            (event,) = await client.events(1)
            assert event["row"]["name"] == "still works"

    run(scenario())


def test_single_channel_url_for_an_unknown_channel_closes_with_4404(stack: Stack) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/secret/") as client:
            error = await client.expect("error")
            assert error["code"] == "unknown_channel"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

    run(scenario())


def test_cross_origin_handshake_is_refused(stack: Stack) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/", origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403

    run(scenario())


def test_listener_reconnects_after_its_connection_is_killed(fresh_stack: Stack, iso_pg: psycopg.Connection) -> None:
    pg = iso_pg
    listener = fresh_stack.listeners[0]

    async def scenario() -> None:
        async with Client.connect(f"{fresh_stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            pg.execute("INSERT INTO people (name) VALUES ('before kill')")
            (before,) = await client.events(1)
            killed = pg.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE 'pgevents-listener %' AND datname = current_database()"
            ).fetchone()
            assert killed is not None and killed[0] >= 1
            pg.execute("INSERT INTO people (name) VALUES ('while reconnecting')")
            fresh_stack.wait_active(listener, count=2)
            pg.execute("INSERT INTO people (name) VALUES ('after reconnect')")
            pg.execute("NOTIFY people, 'plain after reconnect'")
            got = await client.events(3)
        assert before["row"]["name"] == "before kill"
        names = [e["row"]["name"] if e["row"] else e["payload"] for e in got]
        assert sorted(names) == sorted(["while reconnecting", "after reconnect", "plain after reconnect"])
        durable = [e["id"] for e in got if e["id"] is not None]
        assert durable == sorted(durable)

    run(scenario())
    assert "reconnecting" in listener.output()


def test_runlisten_stops_cleanly_on_sigterm_and_sigint(isolated_db: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        stack = Stack(isolated_db, listener=False)
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runlisten"],
            cwd=ROOT,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out = ""
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while "listener active" not in out and time.monotonic() < deadline:
            out += proc.stdout.readline()
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out + rest
        assert "listener stopped" in rest
        assert "Traceback" not in out + rest


def test_runlisten_help_documents_every_option(db_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "manage.py", "runlisten", "--help"],
        cwd=ROOT,
        env=base_env(db_url),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--database",
        "--layer",
        "--channel",
        "--poll-interval",
        "--batch-size",
        "--coalesce",
        "--pace",
        "--pace-cap",
        "--health-port",
        "--health-host",
        "--no-lock",
    ):
        assert option in out


def test_runlisten_refuses_the_in_memory_layer(db_url: str) -> None:
    env = base_env(db_url, PGEVENTS_TEST_LAYER="memory")
    result = subprocess.run(
        [sys.executable, "manage.py", "runlisten"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "in-memory channel layer cannot reach another process" in result.stderr


def test_embedded_topology_runs_the_listener_in_the_server(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """No Redis and no runlisten: the in-memory layer and the listener inside daphne."""
    pg = iso_pg
    with Stack(isolated_db, listener=False, env={"PGEVENTS_TEST_LAYER": "memory"}) as stack:

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
                await client.expect("subscribed")
                assert stack.daphne is not None
                wait_until(lambda: "listener active" in stack.daphne.output(), 30, what="embedded listener")
                pg.execute("INSERT INTO people (name) VALUES ('embedded')")
                pg.execute("NOTIFY people, 'embedded plain'")
                got = await client.events(2)
            assert sorted(e["row"]["name"] if e["row"] else e["payload"] for e in got) == ["embedded", "embedded plain"]

        run(scenario())


def test_listener_detects_a_silently_dead_connection(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    """The network between the listener and PostgreSQL stops passing packets, without any
    connection being closed: the idle probe times out, the listener reconnects, ends its old
    backend (which still holds the advisory lock) and carries on."""
    from tests.faults import BlackholeProxy

    proxy = BlackholeProxy()
    try:
        with Stack(isolated_db, listener=False) as stack:
            listener = stack.start_listener(env={"DATABASE_URL": proxy.url(isolated_db)})

            async def scenario() -> None:
                async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
                    await client.expect("subscribed")
                    proxy.blackhole_existing()
                    iso_pg.execute("INSERT INTO people (name) VALUES ('during the partition')")
                    (event,) = await client.events(1, timeout=60)
                assert event["row"]["name"] == "during the partition"

            run(scenario())
            out = listener.output()
    finally:
        proxy.close()
    assert "TimeoutError" in out
    assert "terminated the unresponsive previous listener backend" in out
