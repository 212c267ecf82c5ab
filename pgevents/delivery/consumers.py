"""The WebSocket face: parse client messages, authorise, and hand subscriptions to the hub.

The consumer has no channel-layer channel of its own (``channel_layer_alias`` names no
layer): events reach it through the process's hub, so a thousand sockets cost the channel
layer nothing more than one.

Every connection is bounded: client messages by size (``MAX_MESSAGE_BYTES``) and rate (a
token bucket), subscriptions by count, and what the server holds for it by
``MAX_SEND_BUFFER`` (see ``flow``). A logged-in connection whose session ends (logout,
password change, expiry) is closed at the next ``SESSION_CHECK_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from pgevents import conf, metrics, policy
from pgevents.core.envelope import control
from pgevents.core.limits import TokenBucket
from pgevents.core.protocol import (
    Command,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    parse,
    parse_query,
)
from pgevents.delivery import admission, fastsend, sessions, transport
from pgevents.delivery.flow import Flow
from pgevents.delivery.outbox import Outbox, Writer
from pgevents.delivery.runtime import get_hub
from pgevents.delivery.subscription import Subscription

logger = logging.getLogger(__name__)

#: Close codes. The single-channel URL closes when its subscription is refused; the others
#: end any connection.
CLOSE_CODES = {
    "bad_request": 4400,
    "unknown_column": 4400,
    "session_ended": 4401,
    "forbidden": 4403,
    "unknown_channel": 4404,
    "too_slow": 4408,
    "too_large": 4413,
    "rate_limited": 4429,
    "unavailable": 4503,
}


class EventConsumer(AsyncWebsocketConsumer):
    """``/ws/pgevents/`` (multiplexed) and ``/ws/pgevents/<channel>/`` (one channel)."""

    # No per-socket layer channel: the hub receives for the whole process.
    channel_layer_alias = "__pgevents_no_layer__"
    #: The ASGI send Channels gives the consumer (replaced by the outbox's outside daphne).
    base_send: Any

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' consumer loop without what this consumer never uses, which each connection
        would otherwise pay for: no channel-layer channel, so no task per message to wait on two
        sources; and no hop to Django's sync thread per message to close stale database
        connections (every database access here goes through ``database_sync_to_async``,
        which does that in its own thread, or through pgevents' own connection)."""
        self.scope = scope
        self.channel_layer = None  # type: ignore[assignment]  # Channels' own "no layer" (see channel_layer_alias)
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        settings = conf.get()
        self.subs: dict[str, Subscription] = {}
        self.closing = False
        self.bucket = TokenBucket(settings.rate_limit, settings.rate_burst)
        server_send = self.scope.get(transport.SERVER_SEND, self.base_send)
        self.protocol = transport.daphne_protocol(server_send)
        #: daphne: its buffer, read directly. Other servers: an outbox and a writer task, so
        #: that a client that stops reading never makes anyone else wait (see ``outbox``).
        self.flow = Flow.attach(self.protocol)
        self.outbox: Outbox | None = None
        self.writer: Writer | None = None
        self.session_task: asyncio.Task[None] | None = None
        self.unwatch: Callable[[], None] | None = None
        await self.accept()
        if self.flow is None:
            self.outbox = Outbox(settings.max_send_buffer, transport.find(server_send))
            self.writer = Writer(self.outbox, self.base_send)
            self.base_send = self.writer.send
        user = self.scope.get("user")
        if settings.session_check_interval > 0 and getattr(user, "is_authenticated", False):
            self.session_task = asyncio.ensure_future(self._watch_session(settings.session_check_interval))
        channel = self.scope.get("url_route", {}).get("kwargs", {}).get("channel")
        if channel is None:
            return
        try:
            command = parse_query(channel, self.scope.get("query_string", b""))
        except ProtocolError as exc:
            await self._fail(exc.code, exc.message, close=True)
            return
        await self._subscribe(command, close_on_error=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if not self.bucket.take():
            await self._fail("rate_limited", "too many messages; slow down", close=True)
            return
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
        self.closing = True
        task: asyncio.Task[None] | None = getattr(self, "session_task", None)
        if task is not None:
            task.cancel()
        flow: Flow | None = getattr(self, "flow", None)
        if flow is not None:
            flow.detach()
        writer: Writer | None = getattr(self, "writer", None)
        if writer is not None:
            writer.stop()
        unwatch: Callable[[], None] | None = getattr(self, "unwatch", None)
        if unwatch is not None:
            unwatch()
        await self._leave_all()

    async def _leave_all(self) -> None:
        hub = get_hub()
        for sub in list(getattr(self, "subs", {}).values()):
            await hub.leave(sub)
        self.subs = {}

    async def send(  # type: ignore[override]  # as Channels' own AsyncWebsocketConsumer.send
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Channels' ``send``, skipped once daphne's protocol is no longer open.

        autobahn closes the protocol as soon as it reads the client's close frame (it answers
        it and drops the TCP connection), but daphne marks the client disconnected, and stops
        passing sends on, only once the TCP connection is gone, a turn of the loop later. A
        send in between (the answer to a frame that came in the same segment as the close)
        would raise "Attempt to send on a closed protocol" and kill the consumer before its
        ``disconnect`` left the hub. Skipped, it is what daphne does a moment later anyway;
        the disconnect comes as usual. Closing a closed protocol is already a no-op there.
        """
        protocol = getattr(self, "protocol", None)
        if protocol is not None and protocol.state != protocol.STATE_OPEN:
            return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    # -- commands ----------------------------------------------------------------------
    async def _subscribe(self, command: Subscribe, close_on_error: bool = False) -> None:
        channel = command.channel
        settings = conf.get()
        if channel not in self.subs and len(self.subs) >= settings.max_subscriptions:
            await self._fail("too_many_subscriptions", f"at most {settings.max_subscriptions} subscriptions", channel)
            return
        hub = get_hub()
        decision = await admission.decide(self.scope.get("user"), command, hub.reader)
        if isinstance(decision, policy.Denial):
            await self._fail(decision.code, decision.message, channel, close=close_on_error)
            return
        if self.closing:
            return
        if channel in self.subs:  # re-subscribing moves the resume point
            await hub.leave(self.subs.pop(channel))
        sink = _Sink(self)
        sub = admission.subscription(command, decision, sink, hub.reader, hub.renders)
        self.subs[channel] = sub
        await hub.join(sub)  # the subscription announces itself once its starting point is fixed
        if self.unwatch is None:  # from the first subscription on, the pipeline's changes
            self.unwatch = hub.pipeline.watch(self._send_pipeline)
            if hub.pipeline.state != "ok":
                await self._send_pipeline(hub.pipeline.frame())

    async def _send_pipeline(self, frame: str) -> None:
        if not self.closing:
            await self.send(text_data=frame)

    async def _unsubscribe(self, channel: str) -> None:
        sub = self.subs.pop(channel, None)
        if sub is None:
            await self._fail("not_subscribed", "not subscribed to this channel", channel)
            return
        await get_hub().leave(sub)
        await self.send(text_data=control("unsubscribed", channel=channel))

    async def _fail(self, code: str, message: str, channel: str | None = None, close: bool = False) -> None:
        """Send an ``error``; with ``close``, end the connection with the code's close code."""
        fields: dict[str, Any] = {"code": code, "message": message}
        if channel is not None:
            fields["channel"] = channel
        # ASCII-escaped: a client-supplied name in it can never make the frame unencodable.
        await self.send(text_data=json.dumps({"type": "error", **fields}, separators=(",", ":")))
        if close:
            await self._close(CLOSE_CODES.get(code, 4400))

    async def _close(self, code: int) -> None:
        self.closing = True
        await self._leave_all()
        await self.close(code=code)

    # -- limits ------------------------------------------------------------------------
    def too_slow(self) -> None:
        """The client stopped reading: queue nothing more for it; it resumes with its last id.

        Called from inside a delivery (the hub's or a replay's), so the close runs as its own
        task: leaving the subscriptions cancels the replay that may be calling this.
        """
        if self.closing:
            return
        self.closing = True
        metrics.SLOW_CLIENTS.inc()
        logger.info("closing a WebSocket that stopped reading (%s)", self.scope.get("client"))
        if self.flow is not None:
            self.flow.close_grace()
        else:
            assert self.outbox is not None and self.writer is not None  # connect(): no Flow, an outbox
            self.outbox.clear()  # it gets only the goodbye, then CLOSE_GRACE to read it
            grace = conf.get().close_grace
            self.abort_handle = transport.abort_later(self.outbox.socket, grace, self.writer.stop)
        message = "the connection fell too far behind; reconnect with last_event_id"
        self.close_task = asyncio.ensure_future(self._fail("too_slow", message, close=True))

    async def _watch_session(self, interval: float) -> None:
        user = self.scope["user"]
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        while not self.closing:
            await asyncio.sleep(interval)
            try:
                alive = await sessions.still_logged_in(key, user)
            except Exception as exc:  # the database is down: keep serving, check again later
                logger.warning("session check failed: %s", exc or type(exc).__name__)
                continue
            if not alive and not self.closing:
                await self._fail("session_ended", "the session has ended; log in again", close=True)
                return


class _Sink:
    """Adapts a consumer to the subscription's sink protocol, bounding what it queues."""

    __slots__ = ("consumer", "direct", "write_nowait")

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        # Live events skip the ASGI send chain under daphne (see pgevents.delivery.fastsend). Only an
        # unfiltered subscription gets this sink directly: FilteredSink has neither attribute.
        self.direct = self._direct()
        self.write_nowait: Callable[[bytes], bool] | None = self.direct.write if self.direct is not None else None

    def _direct(self) -> fastsend.Direct | None:
        """The direct writer, held to the same slow-client rule as ``send_event``: past
        ``MAX_SEND_BUFFER`` unsent bytes the client is closed with ``too_slow`` / 4408. The
        buffer is only measured when the socket did not take a frame at once."""
        consumer = self.consumer
        if consumer.flow is None:
            return None
        return fastsend.direct(
            consumer.protocol, limit=conf.get().max_send_buffer, on_slow=consumer.too_slow, owner=consumer
        )

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        consumer = self.consumer
        if consumer.closing:
            return
        flow, outbox = consumer.flow, consumer.outbox
        if replay:
            # replaying: go at the client's pace (live events wait in the subscription)
            if flow is not None:
                await flow.writable()
            else:
                assert outbox is not None  # connect(): a connection without a Flow has an outbox
                await outbox.room()
            if consumer.closing:
                return
        if flow is not None:
            if flow.pending() > conf.get().max_send_buffer:  # the backlog before this frame
                consumer.too_slow()
                return
            await consumer.send(text_data=frame)
            return
        assert outbox is not None
        if not outbox.offer({"type": "websocket.send", "text": frame}, len(frame)):
            consumer.too_slow()

    async def send_control(self, frame: str) -> None:
        if not self.consumer.closing:
            await self.consumer.send(text_data=frame)
