"""One client's subscription to one channel: resume, dedupe, gap repair, ordered delivery.

A subscription is either *live* (events are sent as the hub offers them) or *catching up*
(events are read from the log while live ones are buffered). Every durable event carries the
id of the previous event on its channel (``prev``): when it is newer than the last id this
client got, something was lost upstream (channel-layer overflow, a Redis restart) and the
subscription catches up from the log. Ids at or below the last one sent are dropped, so the
client sees each event once, in id order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from pgevents import conf, metrics
from pgevents.core.backoff import Backoff
from pgevents.core.envelope import Event, control
from pgevents.delivery.fastsend import Direct
from pgevents.store.log import LogReader

logger = logging.getLogger(__name__)

#: ``offer_nowait`` could not deliver: await ``offer`` instead.
NOT_HANDLED = -1
#: ``_apply`` found a gap before the event (nothing was sent).
GAP = -1
#: Live events buffered while catching up; past this the buffer is dropped and re-read.
BUFFER_LIMIT = 1000
REPLAY_PAGE = 500


class Sink(Protocol):
    """Where a subscription's frames go (a WebSocket, an SSE stream).

    ``replay`` is true for events sent while the subscription catches up (from the log, or
    buffered meanwhile): a sink may take those at the client's pace, never live ones, which
    would hold up the hub's fan-out to everyone else. A sink may also have
    ``write_nowait(data: bytes) -> bool``: a synchronous write of a ready-made WebSocket
    frame (see ``pgevents.delivery.fastsend``), used for live events, and ``direct``: the
    same socket as a ``fastsend.Direct``, which the hub writes many of in one loop
    (:func:`take_run`).
    """

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None: ...

    async def send_control(self, frame: str) -> None: ...


class Subscription:
    #: Slots: a server holds one per subscribed client, tens of thousands per process.
    __slots__ = (
        "_announced",
        "_buffer",
        "_catching_up",
        "_direct",
        "_overflow",
        "_task",
        "_write",
        "channel",
        "closed",
        "direct",
        "last_id",
        "reader",
        "sink",
    )

    def __init__(self, channel: str, sink: Sink, reader: LogReader, *, last_id: int | None = None) -> None:
        self.channel = channel
        #: ``subscribed`` goes out once the starting point is fixed: every event committed
        #: after the client reads it is delivered.
        self._announced = False
        self.sink = sink
        self.reader = reader
        #: Last id delivered (or the resume point). None until the starting point is known.
        self.last_id = last_id
        self._catching_up = True
        self._buffer: list[Event] = []
        self._overflow = False
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        #: The sink's direct write, used for live events. A subscription that rewrites or
        #: filters frames per client must leave this None, so every event takes ``_apply``.
        self._write: Callable[[bytes], bool] | None = getattr(sink, "write_nowait", None)
        self._direct: Direct | None = getattr(sink, "direct", None) if self._write is not None else None
        #: The sink's ``direct`` while the subscription is live and open, else None: the one
        #: attribute the hub's fan-out reads per socket to know it may write there at once.
        self.direct: Direct | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Begin: replay after ``last_id`` (or find the current head), then go live."""
        self._task = asyncio.ensure_future(self._catch_up())

    def close(self) -> None:
        self.closed = True
        self.direct = None
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def resync(self) -> None:
        """Upstream may have lost messages (layer reconnected): check the log."""
        if not self._catching_up and not self.closed:
            self._catching_up = True
            self.direct = None
            self._task = asyncio.ensure_future(self._catch_up())

    # -- delivery ----------------------------------------------------------------------
    def offer_nowait(self, event: Event, wire: bytes) -> int:
        """Deliver a live event synchronously (``wire``: its ready-made WebSocket frame).

        The fast path of :meth:`offer`, for the common case: live, in order, a sink that
        writes directly. Returns 1 when sent, 0 when dropped as already delivered, and
        ``NOT_HANDLED`` when the caller must await :meth:`offer`, which buffers, repairs the
        gap, or sends through the sink's async path.
        """
        if self._write is None or self._catching_up or self.closed:
            return NOT_HANDLED
        id_ = event["id"]
        if id_ is not None:
            assert self.last_id is not None
            if id_ <= self.last_id:
                metrics.DROPPED.labels("duplicate").inc()
                return 0
            prev = event["prev"]
            if prev is not None and prev > self.last_id:
                return NOT_HANDLED  # a gap: offer() starts the repair
            self.last_id = id_
        self._write(wire)
        return 1

    def offer_run_nowait(self, first: Event, last: Event, wire: bytes) -> bool:
        """Deliver a run in one write: ``wire`` is the frames of consecutive durable events
        (each one's ``prev`` is the id before it) from ``first`` to ``last``, or of events
        without ids (``first["id"]`` is None: nothing to order). False: nothing was sent and
        the caller goes event by event (a gap, an overlap, or no direct write)."""
        if self._write is None or self._catching_up or self.closed:
            return False
        first_id = first["id"]
        if first_id is not None:
            assert self.last_id is not None
            prev = first["prev"]
            if first_id <= self.last_id or (prev is not None and prev > self.last_id):
                return False
            self.last_id = last["id"]
        self._write(wire)
        return True

    async def offer(self, event: Event) -> int:
        """Called by the hub, in order, for each event on the channel. Returns 1 when the
        event went to the sink now (already counted in ``metrics.DELIVERED``), else 0."""
        if self.closed:
            return 0
        if self._catching_up:
            self._hold(event)
            return 0
        done = await self._apply(event)
        if done == GAP:
            self._catching_up = True
            self.direct = None
            self._buffer.append(event)
            self._task = asyncio.ensure_future(self._catch_up())
            return 0
        return done

    def _hold(self, event: Event) -> None:
        if self._overflow:
            return
        if len(self._buffer) >= BUFFER_LIMIT:
            metrics.DROPPED.labels("overflow").inc(len(self._buffer))
            self._buffer.clear()
            self._overflow = True
        else:
            self._buffer.append(event)

    async def _apply(self, event: Event) -> int:
        """Deliver ``event`` unless already delivered: 1 when sent, 0 when a duplicate,
        ``GAP`` when it reveals a gap (nothing sent)."""
        id_ = event["id"]
        replay = self._catching_up
        if id_ is None:  # plain / non-durable: nothing to order or repair
            await self.sink.send_event(event["frame"], None, replay=replay)
            metrics.DELIVERED.inc()
            return 1
        assert self.last_id is not None
        if id_ <= self.last_id:
            metrics.DROPPED.labels("duplicate").inc()
            return 0  # already delivered (replay overlap, or a listener re-send)
        prev = event["prev"]
        if prev is not None and prev > self.last_id:
            logger.info("gap on %r after id %d (next has prev %d); catching up", self.channel, self.last_id, prev)
            metrics.GAPS.inc()
            return GAP
        self.last_id = id_
        await self.sink.send_event(event["frame"], id_, replay=replay)
        metrics.DELIVERED.inc()
        return 1

    async def _catch_up(self) -> None:
        """The only task that reads the log for this subscription; ends live.

        When the log cannot be read (the database is down or does not answer within
        ``QUERY_TIMEOUT``), the client is told once per outage, at its first failed attempt
        (``error`` ``unavailable`` with ``retrying: true``: the subscription stays and
        catches up by itself), and the attempts go on with ``Backoff``."""
        backoff = Backoff(cap=conf.get().max_backoff)
        while not self.closed:
            try:
                await self._replay_log()
                if await self._flush():
                    self._catching_up = False
                    self.direct = None if self.closed else self._direct
                    self._task = None  # live: an idle connection keeps no finished task
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                first = backoff.attempts == 0
                delay = backoff.next()
                reason = str(exc) or type(exc).__name__
                logger.warning("catch-up on %r failed (%s); retrying in %.2fs", self.channel, reason, delay)
                if first:
                    message = "the event log cannot be read right now; retrying"
                    await self.sink.send_control(
                        control("error", code="unavailable", channel=self.channel, retrying=True, message=message)
                    )
                await asyncio.sleep(delay)

    async def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            await self.sink.send_control(control("subscribed", channel=self.channel, last_event_id=self.last_id))

    async def _replay_log(self) -> None:
        if self.last_id is None:
            self.last_id = await self.reader.head(self.channel)
            await self._announce()
            return
        await self._announce()
        limit = conf.get().replay_limit
        replayed = 0
        while True:
            result = await self.reader.read_after(self.channel, self.last_id, REPLAY_PAGE)
            if result.reset or replayed + len(result.events) > limit:
                metrics.RESETS.inc()
                head = await self.reader.head(self.channel)
                await self.sink.send_control(
                    control(
                        "reset",
                        channel=self.channel,
                        last_event_id=head,
                        message="history is no longer available; reload the current state",
                    )
                )
                self.last_id = head
                return
            for logged in result.events:
                if logged.id > self.last_id:
                    self.last_id = logged.id
                    await self.sink.send_event(logged.frame, logged.id, replay=True)
                    metrics.REPLAYED.inc()
            replayed += len(result.events)
            if not result.more:
                return

    async def _flush(self) -> bool:
        """Deliver what was buffered during the replay. False: read the log again first."""
        if self._overflow:
            self._overflow = False
            self._buffer.clear()
            return False
        while self._buffer:
            pending, self._buffer = self._buffer, []
            for i, event in enumerate(pending):
                if await self._apply(event) == GAP:
                    self._buffer = pending[i:] + self._buffer
                    return False
        return True  # no await since the emptiness check: going live is atomic


def take_run(subs: Iterable[Subscription], first: Event, last: Event) -> tuple[list[Direct], list[Subscription]]:
    """Split ``subs`` for a run from ``first`` to ``last`` (see ``offer_run_nowait``): the
    direct sockets of the live subscriptions the run follows on exactly (their ``last_id``
    is the run's ``prev``, now advanced to its end; for events without ids, every live one),
    and the rest, which the caller offers the run the general way (a gap, an overlap, a
    catch-up, a sink that is not a socket). One loop with two attribute reads per
    subscription: the fan-out's per-socket work before the ``send()`` itself."""
    targets: list[Direct] = []
    rest: list[Subscription] = []
    if first["id"] is None:
        for sub in subs:
            direct = sub.direct
            if direct is None:
                rest.append(sub)
            else:
                targets.append(direct)
        return targets, rest
    prev, end = first["prev"], last["id"]
    for sub in subs:
        direct = sub.direct
        if direct is not None and sub.last_id == prev:  # live (so last_id is set) and in order
            sub.last_id = end
            targets.append(direct)
        else:
            rest.append(sub)
    return targets, rest
