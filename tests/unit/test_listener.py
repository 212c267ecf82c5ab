"""The listener's decisions without a database: what each notification is, and reconnecting."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from pgevents.capture.listener import WAKE_LOG, WAKE_TRANSIENT, Listener
from pgevents.core.envelope import INTERNAL_CHANNEL, Event


def classify(channel: str, payload: str) -> tuple[int, list[Event]]:
    plain: list[Event] = []
    wake = Listener(layer=object())._take(channel, payload, plain)
    return wake, plain


def test_an_empty_notification_on_the_internal_channel_is_a_wake_up_for_the_log() -> None:
    assert classify(INTERNAL_CHANNEL, "") == (WAKE_LOG, [])


def test_a_t_on_the_internal_channel_is_a_wake_up_for_the_transient_table() -> None:
    assert classify(INTERNAL_CHANNEL, "t") == (WAKE_TRANSIENT, [])


def test_a_plain_notify_is_forwarded_untouched_without_an_id() -> None:
    wake, (event,) = classify("demo", "héllo, 'world'")
    frame = json.loads(event["frame"])
    assert wake == 0 and event["channel"] == "demo" and event["id"] is None
    assert frame["payload"] == "héllo, 'world'" and frame["op"] is None and frame["type"] == "event"


def test_an_event_shaped_payload_on_the_internal_channel_is_not_believed() -> None:
    """What the trigger function of v2 sent for a non-durable watch: any role can send it."""
    payload = json.dumps({"channel": "people", "op": "INSERT", "table": "people", "row": {"id": 1}})
    assert classify(INTERNAL_CHANNEL, payload) == (0, [])


def test_any_other_payload_on_the_internal_channel_is_ignored() -> None:
    for payload in ("not json", "[1, 2]", '{"channel": 7}', "T", " "):
        assert classify(INTERNAL_CHANNEL, payload) == (0, [])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_connection_is_retried_with_backoff_until_stopped() -> None:
    port = _closed_port()

    async def body() -> None:
        attempts: list[float] = []

        async def connect() -> psycopg.AsyncConnection[Any]:
            attempts.append(asyncio.get_running_loop().time())
            if len(attempts) == 3:
                listener.stop()
            return await psycopg.AsyncConnection.connect(f"host=127.0.0.1 port={port} user=x connect_timeout=2")

        listener = Listener(layer=object(), connect=connect)
        await asyncio.wait_for(listener.run(), 10)
        assert len(attempts) == 3 and not listener.active
        assert listener.backoff.attempts >= 2  # each failure waited longer (reset only once connected)

    asyncio.run(body())


def test_a_server_that_never_answers_ends_the_session_by_timeout() -> None:
    async def body() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # keep the socket open; say nothing, until the client goes
            try:
                await reader.read()
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tries = 0

        async def connect() -> psycopg.AsyncConnection[Any]:
            nonlocal tries
            tries += 1
            if tries == 2:
                listener.stop()
            return await psycopg.AsyncConnection.connect(f"host=127.0.0.1 port={port} user=x")

        with override_settings(PGEVENTS={**settings.PGEVENTS, "QUERY_TIMEOUT": 0.2}):
            listener = Listener(layer=object(), connect=connect)
            await asyncio.wait_for(listener.run(), 10)
        assert tries == 2 and len(accepted) >= 1
        server.close()
        await server.wait_closed()
        for writer in accepted:
            writer.close()
            await writer.wait_closed()

    asyncio.run(body())


def test_without_a_channel_layer_the_listener_says_so() -> None:
    with override_settings(CHANNEL_LAYERS={}), pytest.raises(RuntimeError, match="needs a channel layer"):
        asyncio.run(Listener().run())


class _Recording:
    """A channel layer that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append(message)


def test_one_look_publishes_both_kinds_and_only_durable_events_move_the_published_mark() -> None:
    """A look's positioned and non-durable events go out in one publish; the mark that a
    restart re-sends after follows the last durable id, and a look that found only
    non-durable events (no id, never re-sent) leaves it where it was."""
    from pgevents.core.batch import unpack
    from pgevents.store.log import LoggedEvent, Look

    def frame(channel: str, event_id: int | None) -> str:
        return json.dumps({"type": "event", "channel": channel, "id": event_id})

    async def body() -> None:
        layer = _Recording()
        listener = Listener(layer=layer, batch_size=10)
        durable = [LoggedEvent(7, None, "people", frame("people", 7)), LoggedEvent(8, 7, "people", frame("people", 8))]
        await listener._forward(Look(durable, [("t.fleeting", frame("t.fleeting", None))]))
        await listener._sent()
        assert listener._published == 8 and listener.forwarded == 3
        await listener._forward(Look([], [("t.fleeting", frame("t.fleeting", None))]))
        await listener._sent()
        assert listener._published == 8 and listener.forwarded == 4
        ids = [json.loads(e["frame"])["id"] for m in layer.sent for e in unpack(m)]
        assert sorted(ids, key=lambda i: i or 0) == [None, None, 7, 8]

    asyncio.run(body())
