"""``PubSubChannelLayer``: channels-redis' pub/sub layer, bounded, and honest about failures.

Measured against the core ``RedisChannelLayer`` (docs/benchmarks.md), the pub/sub layer
costs one ``PUBLISH`` per message instead of about eight Redis round trips, which halves
pgevents' own latency and most of a server's CPU at low rates. As shipped it has two flaws
for pgevents: its per-channel queues are unbounded, and it never tells anyone that its
connection broke (its ``on_disconnect``/``on_reconnect`` hooks are never called), so what
was published meanwhile is silently gone. This subclass fixes both the way the core layer
behaves for the hub:

- each receiving channel's queue holds at most ``capacity`` messages; on overflow the queue
  is emptied and the next ``receive()`` raises ``LayerReset``;
- when the subscription connection fails, and again when it is re-established, every
  receiving channel's next ``receive()`` raises ``LayerReset`` (once each: not again for
  every failed attempt to reconnect in between);
- ``group_add`` returns once Redis has confirmed the subscription (channels-redis returns
  when the ``SUBSCRIBE`` is written): the hub reads a channel's head only after joining its
  group, so a message published in between would otherwise be missed until the next one
  revealed the gap.

It also has ``receive_many(channel, limit)``: the next message and whatever else is already
queued for the channel, so that a hub that fell behind takes its whole backlog in one
dispatch (one write per socket for all of it) instead of one message at a time.

On ``LayerReset`` the hub re-joins its groups and every subscription reads the log after
its last id, at once (no backoff): nothing is lost, and the gap closes as soon as Redis is
back. Configure it like the pub/sub layer, plus ``capacity``::

    CHANNEL_LAYERS = {"default": {"BACKEND": "pgevents.layers.PubSubChannelLayer",
                                  "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "capacity": 10_000}}}
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, create_pool, decode_hosts
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub

from pgevents.delivery.hub import LayerReset

__all__ = ["LayerReset", "PubSubChannelLayer"]

logger = logging.getLogger(__name__)

_RESET = object()
#: Seconds ``group_add`` waits for Redis to confirm a new subscription before raising
#: ``TimeoutError`` (the hub then re-joins once the layer is back).
CONFIRM_TIMEOUT = 10.0

#: The private parts of channels-redis (4.3) this module overrides or calls, besides the
#: instance state it reads (``_redis``, ``_pubsub``, ``_lock``, ``_subscribed_to``,
#: ``_shards``, ``_layers``, ``_args``, ``_kwargs``). ``pyproject.toml`` pins channels-redis
#: to 4.3.x for this reason; a version that renamed one fails here, at import, not at the
#: first lost message.
RELIES_ON = {
    RedisSingleShardConnection: ("_ensure_redis", "_do_receiving", "_receive_message"),
    RedisPubSubLoopLayer: ("_subscribe_to_channel", "_get_shard"),
    RedisPubSubChannelLayer: ("_get_layer",),
}
_missing = [f"{cls.__name__}.{name}" for cls, names in RELIES_ON.items() for name in names if not hasattr(cls, name)]
if _missing:  # pragma: no cover - only with an unsupported channels-redis
    raise ImportError(f"pgevents.layers needs channels-redis 4.3: {', '.join(_missing)} not found")


class _PubSub(PubSub):
    """Tells its shard about every (re)connection of the subscription connection."""

    shard: _Shard | None = None

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)
        if self.shard is not None:
            self.shard.connected()


class _Shard(RedisSingleShardConnection):  # type: ignore[misc]
    channel_layer: _LoopLayer

    def __init__(self, host: Any, channel_layer: _LoopLayer) -> None:
        super().__init__(host, channel_layer)
        #: Set by each subscription: the receive loop starts reading at once, instead of
        #: finishing a 100 ms idle sleep while the first messages wait.
        self._wake = asyncio.Event()
        #: Channels whose SUBSCRIBE Redis has not confirmed yet, and what their callers wait on.
        self._confirming: dict[str, asyncio.Future[None]] = {}

    async def subscribe(self, channel: str) -> None:
        """Subscribe to ``channel`` and return once Redis confirmed it (or had already)."""
        waiter = self._confirming.get(channel)
        if waiter is None and channel not in self._subscribed_to:
            waiter = self._confirming[channel] = asyncio.get_running_loop().create_future()
        await super().subscribe(channel)
        self._wake.set()
        if waiter is None:
            return
        try:
            # A scope, not wait_for (which on Python 3.11 can swallow a cancellation that
            # arrives as the confirmation does); the shield keeps the waiter for later callers.
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                await asyncio.shield(waiter)
        finally:
            if self._confirming.get(channel) is waiter and not waiter.done():
                del self._confirming[channel]  # timed out: later callers do not wait on it

    _redis: aioredis.Redis | None
    _pubsub: _PubSub | None

    def _ensure_redis(self) -> None:
        if self._redis is None:
            pool = create_pool(self.host)
            self._redis = aioredis.Redis(connection_pool=pool)
            self._pubsub = _PubSub(pool)
            self._pubsub.shard = self

    def connected(self) -> None:
        """redis-py re-established the subscription connection (it calls this only on a
        reconnection, not when the connection is first made)."""
        logger.warning("Redis pub/sub connection re-established; receivers will re-sync")
        self.channel_layer.reset_all()

    async def _do_receiving(self) -> None:
        broken = False
        while True:
            try:
                if broken:
                    await self._rebuild()
                    broken = False
                self._wake.clear()
                pubsub = self._pubsub
                if pubsub is not None and pubsub.subscribed:
                    await self._read(pubsub)
                else:
                    try:
                        async with asyncio.timeout(0.1):  # a scope, not wait_for: see ``subscribe``
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                logger.warning("Redis pub/sub receive failed (%s: %s); receivers will re-sync", type(exc).__name__, exc)
                if not broken:  # told once when it breaks, and again by _rebuild when it is back
                    self.channel_layer.reset_all()
                broken = True
                await asyncio.sleep(1)

    async def _read(self, pubsub: _PubSub) -> None:
        """The next message from the subscription connection, handed to its receivers.

        channels-redis polls with ``get_message(timeout=0.1)``: a timer armed and cancelled
        around every message. This waits without one, and once data has arrived each further
        call parses what is already buffered without yielding to the event loop: everything
        that came in one read reaches the receivers' queues before any of them runs, and the
        hub takes it in one dispatch. A connection configured with ``health_check_interval``
        or ``socket_timeout`` waits at most that long, as it would in redis-py (a read that
        times out on a quiet connection is not a failure: nothing was published).
        """
        connection = pubsub.connection
        wait = (connection.health_check_interval or connection.socket_timeout) if connection is not None else None
        response = await pubsub.parse_response(block=not wait, timeout=wait or 0)
        if response is not None:
            message = await pubsub.handle_message(response, ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
            self._receive_message(message)

    async def _rebuild(self) -> None:
        """A fresh subscription connection with every channel this shard had (raises while
        Redis is unreachable; the caller retries)."""
        async with self._lock:
            old = self._pubsub
            if old is not None:
                try:
                    await old.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                except Exception:  # it is broken already
                    pass
            assert self._redis is not None
            self._pubsub = _PubSub(self._redis.connection_pool)
            self._pubsub.shard = self
            if self._subscribed_to:
                await self._pubsub.subscribe(*self._subscribed_to)
        logger.info("Redis pub/sub connection rebuilt (%d channels); receivers will re-sync", len(self._subscribed_to))
        # What was published between the failure and this subscription is gone: the hubs
        # re-sync now, not when (or if) their channels' next events reveal the gap.
        self.channel_layer.reset_all()

    def _receive_message(self, message: Any) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        kind = message["type"]
        if kind != "message":
            if kind == "subscribe":
                waiter = self._confirming.pop(name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            return
        layer = self.channel_layer
        if name in layer.channels:
            layer.put(name, message["data"])
        elif name in layer.groups:
            for channel_name in layer.groups[name]:
                if channel_name in layer.channels:
                    layer.put(channel_name, message["data"])


class _LoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    def __init__(self, hosts: Any = None, capacity: int = 10_000, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self.capacity = capacity
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]
        #: Channels whose reset marker ``receive_many`` took: their next receive raises.
        self._reset_pending: set[str] = set()

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = asyncio.Queue(maxsize=self.capacity + 1)  # +1: room for the reset marker
        await self._get_shard(channel).subscribe(channel)

    def put(self, channel: str, data: Any) -> None:
        queue = self.channels[channel]
        if queue.qsize() >= self.capacity:
            logger.warning("channel layer queue of %s is full (%d); its receiver will re-sync", channel, self.capacity)
            self._reset(queue)
        else:
            queue.put_nowait(data)

    def reset_all(self) -> None:
        for queue in self.channels.values():
            self._reset(queue)

    @staticmethod
    def _reset(queue: asyncio.Queue[Any]) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_RESET)

    async def receive_many(self, channel: str, limit: int) -> list[Any]:
        """The next message and up to ``limit - 1`` more already queued, in order. A reset
        marker among them ends the list; the next call raises ``LayerReset``."""
        messages = [await self.receive(channel)]
        queue = self.channels.get(channel)
        while queue is not None and len(messages) < limit and not queue.empty():
            data = queue.get_nowait()
            if data is _RESET:
                self._reset_pending.add(channel)
                break
            messages.append(self.channel_layer.deserialize(data))
        return messages

    async def receive(self, channel: str) -> Any:
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        if channel in self._reset_pending:
            self._reset_pending.discard(channel)
            raise LayerReset("messages may have been lost; re-sync from storage")
        try:
            message = await self.channels[channel].get()
        except (asyncio.CancelledError, GeneratorExit):
            if channel in self.channels:  # the receiver is going away: stop receiving for it
                del self.channels[channel]
                try:
                    await self._get_shard(channel).unsubscribe(channel)
                except Exception:
                    logger.exception("unsubscribing %s failed", channel)
            raise
        if message is _RESET:
            raise LayerReset("messages may have been lost; re-sync from storage")
        return self.channel_layer.deserialize(message)


class PubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    async def receive_many(self, channel: str, limit: int) -> list[Any]:
        """The next message on ``channel`` and up to ``limit - 1`` more already queued."""
        return await self._get_layer().receive_many(channel, limit)

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer: _LoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer
