"""Per-process fan-out: one channel-layer channel per process, not one per socket.

The hub joins a channel's group when its first local subscriber arrives and leaves with the
last. Events arrive once per process, in per-channel batches, already encoded by the
listener; each event's WebSocket frame is built once and offered to every local
subscription. Live, in-order subscriptions take it synchronously (``offer_run_nowait``:
under daphne, one ``send()`` per socket, see ``fastsend``); anything else (a gap, catching
up, an SSE stream) goes through the subscription's async path, which keeps every guarantee.

The cost per event falls as a backlog grows. A layer with ``receive_many`` (pgevents'
``PubSubChannelLayer``) hands over every message already queued for the process, up to
``MERGE_LIMIT``; the hub merges them per channel, and a run of events that follow each
other goes to each socket as one write. A process that keeps up pays one ``send()`` per
socket per event; one that fell behind by *n* events pays one per socket for all *n*, so it
catches up instead of settling into a slow mode.

When the layer fails (Redis restarts, a receive times out) the hub reconnects with backoff,
re-joins its groups and tells every subscription to check the log, so nothing the layer
dropped in the meantime is lost. A layer that may have dropped messages but needs no
waiting for (it reconnected, or a queue overflowed) says so with ``LayerReset``: the hub
then re-joins and re-syncs at once, since a backoff would only delay the repair. Group
memberships are refreshed periodically because channels-redis expires them
(``group_expiry``).

The hub also joins the control group, where the active listener's heartbeats arrive, and
hands them to this process's view of the pipeline (``pipeline.Pipeline``), which tells
connections when no listener is heard from or delivery is stalled.

The hub only fans out: the process's runtime (``pgevents.delivery.runtime``) creates it with
the log reader its subscriptions share and the pipeline, and runs whatever else the process
needs beside it (the pipeline's watchdog among them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from pgevents import conf, metrics
from pgevents.core.backoff import Backoff
from pgevents.core.batch import is_heartbeat, unpack
from pgevents.core.envelope import Event
from pgevents.core.names import CONTROL_GROUP, group_name
from pgevents.delivery.fastsend import text_frame, write_each
from pgevents.delivery.heads import SharedHeads
from pgevents.delivery.pipeline import Pipeline
from pgevents.delivery.render import RenderCache
from pgevents.delivery.subscription import NOT_HANDLED, Subscription, take_run
from pgevents.store.log import LogReader

logger = logging.getLogger(__name__)

#: Re-add groups this often (seconds); well under channels-redis' default group_expiry (1 day).
REFRESH_INTERVAL = 3600.0
#: Most layer messages merged into one dispatch (each a batch of one or more events): enough
#: to absorb seconds of backlog at once, few enough that one dispatch stays well under a
#: second and a write to a socket under a few hundred KiB.
MERGE_LIMIT = 128


class LayerReset(ConnectionError):
    """Raised by a channel layer's ``receive()`` when messages may have been lost: once when
    its connection breaks, once when it is re-established, and when a queue overflowed
    (``pgevents.layers.PubSubChannelLayer``). The hub re-syncs from the log at once."""


class Hub:
    def __init__(self, layer: Any, reader: LogReader, pipeline: Pipeline | None = None) -> None:
        self.layer = layer
        #: The log the process's subscriptions replay from (one shared connection); new
        #: subscriptions of a channel share their head queries.
        self.reader: LogReader = SharedHeads(reader)
        self.subscriptions: dict[str, set[Subscription]] = {}
        self.channel_name: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._joined: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready = asyncio.Event()
        self.delivered = 0
        #: False from a channel-layer failure until a message is received again.
        self.layer_ok = True
        #: Shared regions' renders, once per URL and event for all of this process's subscribers.
        self.renders = RenderCache()
        #: This process's view of the listener's heartbeats (its watchdog runs in the runtime).
        self.pipeline = Pipeline(conf.get().stall_timeout) if pipeline is None else pipeline

    # -- membership --------------------------------------------------------------------
    async def join(self, sub: Subscription) -> None:
        """Register ``sub`` and make sure this process receives its channel; then start it."""
        self._ensure_running()
        await self._ready.wait()
        self.subscriptions.setdefault(sub.channel, set()).add(sub)
        async with self._locks.setdefault(sub.channel, asyncio.Lock()):
            if sub.channel not in self._joined:
                try:
                    await self.layer.group_add(group_name(sub.channel), self.channel_name)
                    self._joined.add(sub.channel)
                except Exception as exc:  # the receive loop re-joins once the layer is back
                    logger.warning("group_add for %r failed (%s); will retry", sub.channel, exc)
        sub.start()  # reads the head/replay only after the group is joined: nothing slips between

    async def leave(self, sub: Subscription) -> None:
        sub.close()
        subs = self.subscriptions.get(sub.channel)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self.subscriptions[sub.channel]
            if sub.channel in self._joined:
                self._joined.discard(sub.channel)
                try:
                    await self.layer.group_discard(group_name(sub.channel), self.channel_name)
                except Exception as exc:
                    logger.debug("group_discard for %r failed: %s", sub.channel, exc)

    def count(self) -> dict[str, int]:
        return {channel: len(subs) for channel, subs in self.subscriptions.items()}

    # -- receiving ---------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _receive(self) -> list[dict[str, Any]]:
        """The next layer message, with whatever else is already queued when the layer can say."""
        many = getattr(self.layer, "receive_many", None)
        if many is not None:
            return list(await many(self.channel_name, MERGE_LIMIT))
        return [await self.layer.receive(self.channel_name)]

    async def _run(self) -> None:
        backoff = Backoff(cap=conf.get().max_backoff)
        recovering = False
        while True:
            try:
                if self.channel_name is None:
                    self.channel_name = await self.layer.new_channel("pgevents.hub.")
                    await self.layer.group_add(CONTROL_GROUP, self.channel_name)
                if recovering:
                    await self._rejoin()
                self._ready.set()
                loop = asyncio.get_running_loop()
                refresh_at = loop.time() + REFRESH_INTERVAL
                while True:
                    messages = await self._receive()
                    backoff.reset()
                    recovering = False
                    self.layer_ok = True
                    await self._dispatch_all(messages)
                    if loop.time() >= refresh_at:
                        refresh_at = loop.time() + REFRESH_INTERVAL
                        await self._rejoin(resync=False)
            except asyncio.CancelledError:
                raise
            except LayerReset as exc:
                # No pause: a layer says this when it works again (or overflowed), and only once
                # when it breaks; its receive() then waits until it is back.
                logger.info("channel layer reset (%s); re-joining and checking the log", exc)
                self._ready.set()
                recovering = True
                self.layer_ok = False
                metrics.LAYER_FAILURES.inc()
            except Exception as exc:
                delay = backoff.next()
                logger.warning(
                    "channel layer receive failed (%s: %s); retrying in %.2fs", type(exc).__name__, exc, delay
                )
                self._ready.set()  # joiners must not hang while the layer is down
                recovering = True
                self.layer_ok = False
                metrics.LAYER_FAILURES.inc()
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _rejoin(self, resync: bool = True) -> None:
        await self.layer.group_add(CONTROL_GROUP, self.channel_name)
        for channel in list(self.subscriptions):
            await self.layer.group_add(group_name(channel), self.channel_name)
            self._joined.add(channel)
        if resync:
            logger.info("channel layer back; re-joined %d group(s), checking the log", len(self.subscriptions))
            for subs in self.subscriptions.values():
                for sub in subs:
                    sub.resync()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        await self._dispatch_all([message])

    async def _dispatch_all(self, messages: list[dict[str, Any]]) -> None:
        """Heartbeats to the pipeline; events merged per channel, in order, then fanned out."""
        merged: dict[str, list[Event]] = {}
        for message in messages:
            if is_heartbeat(message):
                self.pipeline.heard(message)
                await self.pipeline.update(self.layer_ok)
                continue
            channel = message.get("channel", "")
            if not self.subscriptions.get(channel):
                continue
            try:
                events = unpack(message)
                for event in events:
                    if not isinstance(event["frame"], str):
                        raise TypeError(f"frame is {type(event['frame']).__name__}, not str")
            except Exception as exc:  # not what the listener publishes: skip it, keep receiving
                metrics.DROPPED.labels("malformed").inc()
                logger.warning("skipped a malformed channel-layer message on %r: %r", channel, exc)
                continue
            merged.setdefault(channel, []).extend(events)
        for channel, events in merged.items():
            for run in _runs(events):
                await self._fan_out(channel, run)

    async def _fan_out(self, channel: str, events: list[Event]) -> None:
        subs = self.subscriptions.get(channel)
        if not subs or not events:
            return
        wires = [text_frame(event["frame"]) for event in events]  # framed once, written to every socket
        sent = 0  # counted here (sent through the fast paths)
        counted = 0  # counted in metrics by the subscription (its async path)
        rest: Iterable[Subscription] = subs
        run = None
        if _runnable(events):
            # A run (consecutive durable events, or events without ids) goes to each live
            # socket in one write: one system call, however many events it holds.
            run = b"".join(wires)
            targets, rest = take_run(subs, events[0], events[-1])
            write_each(targets, run)
            sent += len(targets) * len(events)
        for sub in list(rest):
            try:
                if run is not None and sub.offer_run_nowait(events[0], events[-1], run):
                    sent += len(events)
                    continue
            except Exception:
                logger.exception("delivery to a subscriber of %r failed", sub.channel)
                continue
            for event, wire in zip(events, wires, strict=True):
                try:  # one event failing for one subscriber holds up nothing else of the batch
                    done = sub.offer_nowait(event, wire)
                    if done == NOT_HANDLED:
                        counted += await sub.offer(event)
                    else:
                        sent += done
                except Exception:
                    logger.exception("delivery of event %s to a subscriber of %r failed", event["id"], sub.channel)
        metrics.DELIVERED.inc(sent)
        self.delivered += sent + counted


def _runs(events: list[Event]) -> list[list[Event]]:
    """``events`` cut where a run ends (see :func:`_runnable`): a gap in a merged backlog
    costs the events after it their own run, not one write per event to every socket."""
    out: list[list[Event]] = []
    for event in events:
        if out and _runnable([out[-1][-1], event]):
            out[-1].append(event)
        else:
            out.append([event])
    return out


def _runnable(events: list[Event]) -> bool:
    """Events that can go to a live socket as one write: durable events each of which
    follows the one before it on the channel, or events without ids (plain NOTIFY,
    non-durable), which have no order to check."""
    previous = events[0]["id"]
    if previous is None:
        return all(event["id"] is None for event in events)
    for event in events[1:]:
        if event["id"] is None or event["prev"] != previous:
            return False
        previous = event["id"]
    return True
