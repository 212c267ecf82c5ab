"""The WebSocket consumer through channels' ``WebsocketCommunicator``: no server, no database.

Each test installs a runtime over channels' in-memory layer and ``MemoryLog`` for its event
loop; events reach the consumer the way the listener sends them (a batch to the group).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from pgevents import routing
from pgevents.capture import relay
from pgevents.delivery import runtime
from pgevents.store.memory import MemoryLog

APP = URLRouter(routing.websocket_urlpatterns)


def scenario(body: Callable[[MemoryLog, Any], Awaitable[None]], **pgevents: Any) -> None:
    async def go() -> None:
        layer, log = InMemoryChannelLayer(), MemoryLog()
        runtime.install(runtime.Runtime(layer, reader=log))
        with override_settings(PGEVENTS={**settings.PGEVENTS, **pgevents}):
            await body(log, layer)

    asyncio.run(go())


async def connected(path: str = "/ws/pgevents/") -> WebsocketCommunicator:
    ws = WebsocketCommunicator(APP, path)
    ok, _ = await ws.connect()
    assert ok
    return ws


async def fence(ws: WebsocketCommunicator) -> None:
    """Whatever was sent before this ping has been answered: the next message is the pong."""
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}


def test_subscribe_receive_unsubscribe() -> None:
    async def body(log: MemoryLog, layer: Any) -> None:
        log.commit("people", row={"name": "before"})
        ws = await connected()
        await ws.send_json_to({"type": "subscribe", "channel": "people"})
        assert await ws.receive_json_from() == {"type": "subscribed", "channel": "people", "last_event_id": 1}
        await relay.publish(layer, [log.commit("people", row={"name": "Ada"})], timeout=5)
        event = await ws.receive_json_from()
        assert (event["type"], event["id"], event["row"]) == ("event", 2, {"name": "Ada"})
        await ws.send_json_to({"type": "unsubscribe", "channel": "people"})
        assert await ws.receive_json_from() == {"type": "unsubscribed", "channel": "people"}
        await relay.publish(layer, [log.commit("people")], timeout=5)
        await fence(ws)  # the event after unsubscribing never came
        await ws.disconnect()

    scenario(body)


def test_every_bad_message_gets_an_error_and_the_connection_stays_open() -> None:
    async def body(log: MemoryLog, layer: Any) -> None:
        ws = await connected()
        for message, code in [
            ("not json", "bad_request"),
            ('{"type": "subscribe", "channel": "nope"}', "unknown_channel"),
            ('{"type": "subscribe", "channel": "sec.login"}', "forbidden"),
            ('{"type": "subscribe", "channel": "people", "filter": {"age": {"like": 1}}}', "bad_request"),
            ('{"type": "unsubscribe", "channel": "people"}', "not_subscribed"),
            ('{"type": "dance"}', "bad_request"),
            ("x" * 300, "too_large"),
        ]:
            await ws.send_to(text_data=message)
            assert (await ws.receive_json_from())["code"] == code, message
        await ws.send_to(bytes_data=b"\x00")
        assert (await ws.receive_json_from())["code"] == "bad_request"
        await ws.send_json_to({"type": "subscribe", "channel": "people"})
        assert (await ws.receive_json_from())["type"] == "subscribed"
        await ws.send_json_to({"type": "subscribe", "channel": "demo"})
        assert (await ws.receive_json_from())["code"] == "too_many_subscriptions"
        await fence(ws)
        await ws.disconnect()

    scenario(body, MAX_MESSAGE_BYTES=256, MAX_SUBSCRIPTIONS=1)


def test_the_single_channel_url_resumes_and_closes_on_refusal() -> None:
    async def body(log: MemoryLog, layer: Any) -> None:
        for name in ("a", "b", "c"):
            log.commit("people", row={"name": name})
        ws = await connected("/ws/pgevents/people/?last_event_id=1")
        assert (await ws.receive_json_from())["type"] == "subscribed"
        assert [(await ws.receive_json_from())["row"]["name"] for _ in range(2)] == ["b", "c"]
        await ws.disconnect()
        for path, close_code in [
            ("/ws/pgevents/nope/", 4404),
            ("/ws/pgevents/people/?filter=nojson", 4400),
            ("/ws/pgevents/people/?last_event_id=-1", 4400),
            ("/ws/pgevents/sec.closed/", 4403),
        ]:
            ws = await connected(path)
            assert (await ws.receive_json_from())["type"] == "error"
            assert (await ws.receive_output())["code"] == close_code, path

    scenario(body)


def test_a_client_over_the_rate_limit_is_closed() -> None:
    async def body(log: MemoryLog, layer: Any) -> None:
        ws = await connected()
        for _ in range(3):
            await ws.send_json_to({"type": "ping"})
        assert [await ws.receive_json_from() for _ in range(2)] == [{"type": "pong"}] * 2
        assert (await ws.receive_json_from())["code"] == "rate_limited"
        assert (await ws.receive_output())["code"] == 4429

    scenario(body, RATE_LIMIT=0.001, RATE_BURST=2)


def test_a_message_type_without_a_handler_fails_the_connection_as_in_channels() -> None:
    async def body(log: MemoryLog, layer: Any) -> None:
        ws = await connected()
        await ws.send_input({"type": "websocket.nonsense"})
        try:
            await ws.wait(timeout=5)
        except ValueError as exc:
            assert "websocket.nonsense" in str(exc)
        else:
            raise AssertionError("the consumer accepted a message type it has no handler for")

    scenario(body)
