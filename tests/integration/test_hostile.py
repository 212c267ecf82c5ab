"""A catalogue of bad input, each with its expected answer, against the real server.

Every case opens its own connection on the shared stack and checks the exact answer: an
``error`` with a code (after which the connection still answers a ping) or a close code. The
last tests check that NOTIFY payloads cannot forge events, that an oversized NOTIFY fails
only its writer, and that after all of it the server still serves a normal client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import quote

import psycopg
import psycopg.sql
import pytest
import websockets

from tests.support import Client, Stack, run

Expect = tuple[str, Any]  # ("error", code) or ("dropped", None): connection cut without a close frame


def sub(channel: Any = "people", **fields: Any) -> dict[str, Any]:
    return {"type": "subscribe", "channel": channel, **fields}


# (case id, what is sent on /ws/pgevents/, expected answer)
MESSAGES: list[tuple[str, str | bytes | dict[str, Any], Expect]] = [
    # -- not JSON, not an object ---------------------------------------------------------
    ("plain-text", "hello", ("error", "bad_request")),
    ("empty-text", "", ("error", "bad_request")),
    ("truncated-json", '{"type": "subscribe", "channel": ', ("error", "bad_request")),
    ("json-null", "null", ("error", "bad_request")),
    ("json-array", '["subscribe", "people"]', ("error", "bad_request")),
    ("json-string", '"subscribe"', ("error", "bad_request")),
    ("json-number", "42", ("error", "bad_request")),
    ("nan-literal", '{"type": "subscribe", "channel": "people", "last_event_id": NaN}', ("error", "bad_request")),
    ("deep-nesting", "[" * 20000 + "]" * 20000, ("error", "bad_request")),
    (
        "huge-integer",
        '{"type": "subscribe", "channel": "people", "last_event_id": ' + "9" * 5000 + "}",
        ("error", "bad_request"),
    ),
    # -- wrong or unknown types ----------------------------------------------------------
    ("no-type", {}, ("error", "bad_request")),
    ("type-null", {"type": None}, ("error", "bad_request")),
    ("type-number", {"type": 5}, ("error", "bad_request")),
    ("type-list", {"type": ["subscribe"]}, ("error", "bad_request")),
    ("unknown-type", {"type": "dance"}, ("error", "bad_request")),
    ("type-wrong-case", {"type": "SUBSCRIBE", "channel": "people"}, ("error", "bad_request")),
    ("client-sends-event", {"type": "event", "channel": "people", "id": 1, "row": {}}, ("error", "bad_request")),
    ("duplicate-keys", '{"type": "ping", "type": "subscribe"}', ("error", "bad_request")),
    # -- channel names -------------------------------------------------------------------
    ("channel-missing", {"type": "subscribe"}, ("error", "bad_request")),
    ("channel-null", sub(None), ("error", "bad_request")),
    ("channel-number", sub(123), ("error", "bad_request")),
    ("channel-list", sub(["people"]), ("error", "bad_request")),
    ("channel-object", sub({"name": "people"}), ("error", "bad_request")),
    ("channel-empty", sub(""), ("error", "bad_request")),
    ("channel-64-bytes", sub("a" * 64), ("error", "bad_request")),
    ("channel-unicode-64-bytes", sub("é" * 32), ("error", "bad_request")),
    ("channel-nul", sub("people\x00"), ("error", "bad_request")),
    ("channel-newline", sub("peo\nple"), ("error", "bad_request")),
    ("channel-lone-surrogate", '{"type": "subscribe", "channel": "\\ud800"}', ("error", "bad_request")),
    ("channel-sql", sub("people'; DROP TABLE people; --"), ("error", "unknown_channel")),
    ("channel-double-quote", sub('people"; LISTEN x; --'), ("error", "unknown_channel")),
    ("channel-spaces", sub("peo ple"), ("error", "unknown_channel")),
    ("channel-unicode", sub("ünïcødé"), ("error", "unknown_channel")),
    ("channel-wildcard", sub("*"), ("error", "unknown_channel")),
    ("channel-wrong-case", sub("PEOPLE"), ("error", "unknown_channel")),
    ("channel-internal", sub("pgevents"), ("error", "unknown_channel")),
    # -- forbidden ----------------------------------------------------------------------
    ("forbidden-deny-all", sub("sec.closed"), ("error", "forbidden")),
    ("forbidden-login-required", sub("sec.login"), ("error", "forbidden")),
    ("forbidden-staff", sub("sec.staff"), ("error", "forbidden")),
    ("forbidden-permission", sub("sec.perm.explicit"), ("error", "forbidden")),
    ("forbidden-row-policy", sub("sec.owned"), ("error", "forbidden")),
    ("signed-without-token", sub("sec.signed.a"), ("error", "forbidden")),
    ("signed-garbage-token", sub("sec.signed.a", token="garbage"), ("error", "forbidden")),
    ("token-not-string", sub("sec.signed.a", token=123), ("error", "bad_request")),
    # -- resume points -------------------------------------------------------------------
    ("last-id-negative", sub(last_event_id=-1), ("error", "bad_request")),
    ("last-id-text", sub(last_event_id="abc"), ("error", "bad_request")),
    ("last-id-float", sub(last_event_id=1.5), ("error", "bad_request")),
    ("last-id-bool", sub(last_event_id=True), ("error", "bad_request")),
    ("last-id-2-64", sub(last_event_id=2**64), ("error", "bad_request")),
    # -- filters -------------------------------------------------------------------------
    ("filter-list", sub(filter=[]), ("error", "bad_request")),
    ("filter-string", sub(filter="age > 5"), ("error", "bad_request")),
    ("filter-unknown-operator", sub(filter={"age": {"like": "%"}}), ("error", "bad_request")),
    ("filter-in-not-list", sub(filter={"age": {"in": 5}}), ("error", "bad_request")),
    ("filter-operand-list", sub(filter={"age": {"gte": [1]}}), ("error", "bad_request")),
    ("filter-empty-condition", sub(filter={"age": {}}), ("error", "bad_request")),
    (
        "filter-infinity",
        '{"type": "subscribe", "channel": "people", "filter": {"age": 1e999}}',
        ("error", "bad_request"),
    ),
    ("filter-too-many-columns", sub(filter={f"c{i}": 1 for i in range(33)}), ("error", "bad_request")),
    ("filter-missing-column", sub(filter={"nope": 1}), ("error", "unknown_column")),
    ("filter-sql-column", sub(filter={"age; DROP TABLE people": 1}), ("error", "unknown_column")),
    ("filter-plain-notify-channel", sub("demo", filter={"a": 1}), ("error", "bad_request")),
    # -- unsubscribe ---------------------------------------------------------------------
    ("unsubscribe-not-subscribed", {"type": "unsubscribe", "channel": "people"}, ("error", "not_subscribed")),
    ("unsubscribe-bad-channel", {"type": "unsubscribe", "channel": 5}, ("error", "bad_request")),
    # -- frames --------------------------------------------------------------------------
    ("binary-frame", b"\x00\x01\x02", ("error", "bad_request")),
    ("binary-json", b'{"type": "ping"}', ("error", "bad_request")),
    ("over-max-message-bytes", json.dumps(sub(filter={"name": "x" * 1000}, pad="y" * 70_000)), ("error", "too_large")),
    # daphne itself drops the TCP connection (autobahn fails by drop) before buffering it.
    ("over-daphne-frame-limit", "x" * (2 * 1024 * 1024), ("dropped", None)),
]

# (case id, path and query of the single-channel URL, expected close code)
URLS: list[tuple[str, str, int]] = [
    ("url-unknown-channel", "/ws/pgevents/nope/", 4404),
    ("url-sql-channel", "/ws/pgevents/" + quote("'; DROP TABLE people; --") + "/", 4404),
    ("url-forbidden", "/ws/pgevents/sec.closed/", 4403),
    ("url-64-bytes", "/ws/pgevents/" + "a" * 64 + "/", 4400),
    ("url-bad-last-id", "/ws/pgevents/people/?last_event_id=x", 4400),
    ("url-filter-not-json", "/ws/pgevents/people/?filter=age%3E5", 4400),
    ("url-filter-missing-column", "/ws/pgevents/people/?filter=" + quote('{"nope": 1}'), 4400),
    ("url-signed-without-token", "/ws/pgevents/sec.signed.a/", 4403),
]


def test_catalogue_has_at_least_forty_cases() -> None:
    assert len(MESSAGES) + len(URLS) >= 40


@pytest.mark.parametrize(("message", "expected"), [(m, e) for _, m, e in MESSAGES], ids=[c for c, _, _ in MESSAGES])
def test_bad_message(stack: Stack, message: str | bytes | dict[str, Any], expected: Expect) -> None:
    kind, code = expected

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            if kind == "dropped":
                with pytest.raises(websockets.ConnectionClosed) as closed:  # while sending, or after
                    await client.send(message)
                    await client.recv()
                assert closed.value.rcvd is None  # no close frame: the TCP connection was cut
                return
            await client.send(message)
            error = await client.expect("error")
            assert error["code"] == code, error
            assert error["message"] and "Traceback" not in error["message"] and "psycopg" not in error["message"]
            await client.send({"type": "ping"})  # the connection still works
            assert await client.expect("pong") == {"type": "pong"}

    run(scenario())


@pytest.mark.parametrize(("path", "code"), [(p, c) for _, p, c in URLS], ids=[c for c, _, _ in URLS])
def test_bad_single_channel_url(stack: Stack, path: str, code: int) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}{path}") as client:
            error = await client.expect("error")
            assert error["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code

    run(scenario())


def test_message_flood_is_rate_limited_and_closed_with_4429(stack: Stack) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            sent = 0
            with contextlib.suppress(websockets.ConnectionClosed):  # the server may close mid-flood
                while sent < 1000:
                    await client.send({"type": "ping"})
                    sent += 1
            answers = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    answers.append(await client.recv())
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
            assert answers[-1]["type"] == "error" and answers[-1]["code"] == "rate_limited"
            assert all(a == {"type": "pong"} for a in answers[:-1]) and len(answers) <= sent <= 1000

    run(scenario())


def test_subscriptions_past_the_maximum_are_refused(stack: Stack) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            for i in range(100):  # MAX_SUBSCRIPTIONS, within one burst of the rate limit
                await client.subscribe(f"t.{i}")
            await client.send(sub("t.100"))
            error = await client.expect("error")
            assert (error["code"], error["channel"]) == ("too_many_subscriptions", "t.100")
            await client.subscribe("t.5")  # re-subscribing an existing channel is not a new one
            await client.send({"type": "unsubscribe", "channel": "t.0"})
            await client.expect("unsubscribed")
            await client.subscribe("t.100")

    run(scenario())


@pytest.mark.parametrize("channel", ["sp ace", "q'uote", "ünï", "Mixed Case"])
def test_listed_channels_with_awkward_names_work_end_to_end(stack: Stack, pg: psycopg.Connection, channel: str) -> None:
    """Quotes, spaces, non-ASCII and upper case survive LISTEN (quoted identifiers), the
    channel layer (hashed group names) and both WebSocket URLs."""

    async def scenario() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/") as multi,
            Client.connect(f"{stack.ws}/ws/pgevents/{quote(channel)}/") as single,
        ):
            assert (await multi.subscribe(channel))["channel"] == channel
            assert (await single.expect("subscribed"))["channel"] == channel
            pg.execute("SELECT pg_notify(%s, %s)", (channel, f"to {channel}"))
            for client in (multi, single):
                (event,) = await client.events(1)
                assert (event["channel"], event["payload"]) == (channel, f"to {channel}")

    run(scenario())


def test_notify_payloads_cannot_forge_events(stack: Stack, pg: psycopg.Connection) -> None:
    forged = json.dumps({"type": "event", "channel": "people", "id": 999999, "op": "INSERT", "row": {"name": "forged"}})
    payloads = [forged, "not json at all", '{"unterminated": ', "", '\x7f control \\ backslash " quote', "ü" * 100]

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            for payload in payloads:
                pg.execute("SELECT pg_notify('people', %s)", (payload,))
            got = await client.events(len(payloads))
        assert [e["payload"] for e in got] == payloads
        for event in got:
            assert event["id"] is None and event["op"] is None and event["row"] is None
            assert event["channel"] == "people"

    run(scenario())


def test_garbage_on_the_internal_channel_is_ignored(stack: Stack, pg: psycopg.Connection) -> None:
    """``NOTIFY pgevents`` with junk (the listener's own channel) changes nothing."""

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            for junk in ["junk", "[1,2]", '{"channel": 5}', "{" * 1000]:
                pg.execute("SELECT pg_notify('pgevents', %s)", (junk,))
            pg.execute("INSERT INTO people (name) VALUES ('after junk')")
            (event,) = await client.events(1)
        assert event["row"]["name"] == "after junk"

    run(scenario())


def test_oversized_notify_fails_only_its_writer(stack: Stack, pg: psycopg.Connection) -> None:
    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
            await client.expect("subscribed")
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="payload string too long"):
                pg.execute("SELECT pg_notify('people', repeat('x', 8000))")
            pg.execute("SELECT pg_notify('people', repeat('y', 7999))")  # the largest PostgreSQL accepts
            pg.execute("INSERT INTO people (name) VALUES ('after the huge notify')")
            # plain NOTIFY and durable events have no order between them (docs/delivery.md)
            plain, row = sorted(await client.events(2), key=lambda event: "payload" not in event)
        assert plain["payload"] == "y" * 7999
        assert row["row"]["name"] == "after the huge notify"

    run(scenario())


def test_after_the_catalogue_a_normal_client_is_served(stack: Stack, pg: psycopg.Connection) -> None:
    assert stack.daphne is not None and stack.daphne.alive()
    assert all(p.alive() for p in stack.listeners)

    async def scenario() -> None:
        async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
            await client.subscribe("people")
            await client.subscribe("demo")
            pg.execute("INSERT INTO people (name) VALUES ('still serving')")
            pg.execute("NOTIFY demo, 'still here'")
            got = await client.events(2)
        assert {e["row"]["name"] if e["row"] else e["payload"] for e in got} == {"still serving", "still here"}

    run(scenario())
    assert "Traceback" not in stack.daphne.output()


def test_deeply_nested_notifications_and_rows_cannot_stop_the_listener(stack: Stack, pg: psycopg.Connection) -> None:
    """Both made ``json.loads`` in the listener raise RecursionError and ``runlisten`` exit: a
    NOTIFY on its internal channel from any role, and a row nested 3,900 deep written to a
    non-durable watch. The listener decodes neither now: the first is ignored, the second
    forwarded as PostgreSQL encoded it."""
    from pgevents.setup import installation

    deep = "[" * 3900 + "]" * 3900
    pg.execute("CREATE TABLE deep_rows (id serial PRIMARY KEY, doc jsonb)")
    try:
        with pg.cursor() as cur:
            installation.install(cur, installation.build_spec(cur, table="deep_rows", channel="t.deep", durable=False))

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
                await client.subscribe("t.deep")
                await client.subscribe("people")
                pg.execute(
                    "SELECT pg_notify('pgevents', %s)", ('{"channel":"people","op":"INSERT","row":' + deep + "}",)
                )
                pg.execute("INSERT INTO deep_rows (doc) VALUES (%s::jsonb)", (deep,))
                pg.execute("INSERT INTO people (name) VALUES ('after the deep ones')")
                frames = [await asyncio.wait_for(client.ws.recv(), 15) for _ in range(2)]
                # A fence: the forged notification became no event (it would have come first).
                pg.execute("INSERT INTO people (name) VALUES ('deep fence')")
                assert (await client.recv())["row"]["name"] == "deep fence"
            (nested,) = [f for f in frames if '"t.deep"' in f]
            assert deep in nested and '"id": null' in nested  # too deep for json.loads here too
            (row,) = [json.loads(f) for f in frames if f is not nested]
            assert row["row"]["name"] == "after the deep ones"

        run(scenario())
    finally:
        pg.execute("DROP TABLE deep_rows")
    assert all(p.alive() for p in stack.listeners)


def test_undecodable_notifications_in_a_sql_ascii_database_are_skipped(db_url: str) -> None:
    """A SQL_ASCII database takes any bytes as a payload; psycopg cannot decode them and raised
    UnicodeDecodeError out of the listener. Now: skipped, counted, and everything is drained
    (the wake-ups that came in the same batch are lost with it)."""
    from channels.layers import InMemoryChannelLayer

    from pgevents.capture.listener import WAKE_LOG, WAKE_TRANSIENT, Listener
    from pgevents.core.names import group_name

    base, _, name = db_url.rpartition("/")
    ascii_db = f"{name.partition('?')[0]}_ascii"[:63]
    database = psycopg.sql.Identifier(ascii_db)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(database))
        admin.execute(
            psycopg.sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(database)
        )
    try:

        async def scenario() -> None:
            layer = InMemoryChannelLayer()
            channel = await layer.new_channel()
            await layer.group_add(group_name("demo"), channel)
            listener = Listener(layer=layer, channels=("demo",), poll_interval=2.0)
            # A poll just ran: each wait below waits (up to the poll interval) for the notification
            # instead of only looking at what has already arrived.
            listener._last_drain = time.monotonic()
            async with await psycopg.AsyncConnection.connect(f"{base}/{ascii_db}", autocommit=True) as conn:
                await conn.execute("LISTEN pgevents")
                await conn.execute("LISTEN demo")
                with psycopg.connect(f"{base}/{ascii_db}", autocommit=True) as other:
                    other.execute("SELECT pg_notify('demo', convert_from('\\xe9e9'::bytea, 'SQL_ASCII'))")
                    assert await listener._wait(conn) == WAKE_LOG | WAKE_TRANSIENT
                    other.execute("NOTIFY demo, 'still listening'")
                    assert await listener._wait(conn) == 0
            message = await asyncio.wait_for(layer.receive(channel), 5)
            assert json.loads(message["events"][0][2])["payload"] == "still listening"

        run(scenario())
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
