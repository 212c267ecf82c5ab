"""The WebSocket face: parse client messages, authorise, and hand subscriptions to the hub.

The consumer has no channel-layer channel of its own (``channel_layer_alias`` names no
layer): events reach it through the process's hub, so a thousand sockets cost the channel
layer nothing more than one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from . import conf, fastsend, policy
from .envelope import control
from .hub import get_hub
from .protocol import Command, Ping, ProtocolError, Subscribe, Unsubscribe, channel_of, parse, parse_last_event_id
from .subscription import Subscription

logger = logging.getLogger("pgevents.consumers")

#: Close codes for the single-channel URL, whose subscription failing ends the socket.
CLOSE_CODES = {"bad_request": 4400, "forbidden": 4403, "unknown_channel": 4404, "too_large": 4413}


class EventConsumer(AsyncWebsocketConsumer):
    """``/ws/pgevents/`` (multiplexed) and ``/ws/pgevents/<channel>/`` (one channel)."""

    # No per-socket layer channel: the hub receives for the whole process.
    channel_layer_alias = "__pgevents_no_layer__"

    async def connect(self) -> None:
        self.subs: dict[str, Subscription] = {}
        await self.accept()
        channel = self.scope.get("url_route", {}).get("kwargs", {}).get("channel")
        if channel is None:
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            command = Subscribe(channel_of(channel), parse_last_event_id(query.get("last_event_id", [None])[-1]))
        except ProtocolError as exc:
            await self._fail(exc.code, exc.message, close=True)
            return
        await self._subscribe(command, close_on_error=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._fail("bad_request", "binary frames are not supported; send JSON text")
            return
        try:
            command: Command = parse(text_data, conf.get().max_message_bytes)
        except ProtocolError as exc:
            await self._fail(exc.code, exc.message)
            return
        if isinstance(command, Subscribe):
            await self._subscribe(command)
        elif isinstance(command, Unsubscribe):
            await self._unsubscribe(command.channel)
        elif isinstance(command, Ping):
            await self.send(text_data=control("pong"))

    async def disconnect(self, code: int) -> None:
        hub = get_hub()
        for sub in list(getattr(self, "subs", {}).values()):
            await hub.leave(sub)
        self.subs = {}

    # -- commands ----------------------------------------------------------------------
    async def _subscribe(self, command: Subscribe, close_on_error: bool = False) -> None:
        channel = command.channel
        settings = conf.get()
        if channel not in self.subs and len(self.subs) >= settings.max_subscriptions:
            await self._fail("too_many_subscriptions", f"at most {settings.max_subscriptions} subscriptions", channel)
            return
        denial = await policy.check(self.scope.get("user"), channel, command.filter)
        if denial is not None:
            await self._fail(denial.code, denial.message, channel, close=close_on_error)
            return
        hub = get_hub()
        if channel in self.subs:  # re-subscribing moves the resume point
            await hub.leave(self.subs.pop(channel))
        sub = Subscription(channel, _Sink(self), hub.reader, last_id=command.last_event_id)
        self.subs[channel] = sub
        await hub.join(sub)  # the subscription announces itself once its starting point is fixed

    async def _unsubscribe(self, channel: str) -> None:
        sub = self.subs.pop(channel, None)
        if sub is None:
            await self._fail("not_subscribed", "not subscribed to this channel", channel)
            return
        await get_hub().leave(sub)
        await self.send(text_data=control("unsubscribed", channel=channel))

    async def _fail(self, code: str, message: str, channel: str | None = None, close: bool = False) -> None:
        fields: dict[str, Any] = {"code": code, "message": message}
        if channel is not None:
            fields["channel"] = channel
        await self.send(text_data=control("error", **fields))
        if close:
            await self.close(code=CLOSE_CODES.get(code, 4400))


class _Sink:
    """Adapts a consumer to the subscription's sink protocol."""

    __slots__ = ("consumer", "write_nowait")

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        # Live events skip the ASGI send chain under daphne (see pgevents.fastsend); a sink that
        # filters or rewrites frames per client must not offer write_nowait.
        self.write_nowait = fastsend.writer(consumer.base_send)

    async def send_event(self, frame: str, id: int | None) -> None:
        await self.consumer.send(text_data=frame)

    async def send_control(self, frame: str) -> None:
        await self.consumer.send(text_data=frame)
