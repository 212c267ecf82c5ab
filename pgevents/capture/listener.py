"""The LISTEN loop: one dedicated connection that sequences the log and forwards events.

Order of operations on every (re)connection, which is what makes it gap-free:

1. take the advisory lock (standbys wait here: exactly one listener forwards at a time);
2. LISTEN on the internal channel and the plain-NOTIFY channels;
3. re-send events a previous listener positioned but may not have forwarded;
4. tell writers to wake it (``pgevents.capture.handover``: a previous listener may have
   left the flag saying it polls);
5. drain the log (position and forward everything committed meanwhile) and the transient
   (non-durable) table, in one statement (``log.look``);
6. loop: wait for notifications (at most ``poll_interval``, and ``heartbeat_interval`` when
   shorter), drain the log on every wake-up and whenever ``poll_interval`` has passed since
   the last drain (also the liveness probe of an idle connection), and the transient table
   with it on a transient wake-up, on that poll, and on every look while polling once
   non-durable events came. Once drains find events (durable or not) close together the
   listener polls instead — again at once after a drain
   that found one event, after a pause that grows with the batch and with what the look
   took when it found several (``pgevents.capture.pacing``), ``TICK`` after one that found
   none — and writers skip their wake-ups, until no event came for ``LINGER``; then it
   hands over (see ``pgevents.capture.handover``) and sleeps on LISTEN again.

The internal channel is not trusted: any role that can connect can NOTIFY it. Its payload
only says where to look (``''`` the log, ``'t'`` the transient table); anything else is
counted, logged (at most once a minute) and ignored, and no payload is ever decoded.

While active it sends a heartbeat every ``HEARTBEAT_INTERVAL`` to every server process, with
how long it has been behind (0 when each drain empties the log); pages learn from their
server when heartbeats stop or the lag grows (see ``pgevents.delivery.pipeline``).

Any database error ends the session; the loop reconnects with jittered backoff and starts
again at 1. A channel-layer error does the same, so events are re-sent once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg

from pgevents import conf, metrics
from pgevents.capture import relay
from pgevents.capture.handover import LINGER, STREAM, TICK, Handover
from pgevents.capture.pacing import Pacing
from pgevents.core import envelope, identity, sql
from pgevents.core.backoff import Backoff
from pgevents.core.names import is_listener_session
from pgevents.store import db, log

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: ``application_name`` of the listener's second connection (``pgevents.capture.handover``).
HANDOVER_SESSION = "pgevents-handover"

#: What a wake-up asks the listener to drain.
WAKE_LOG, WAKE_TRANSIENT = 1, 2

#: Errors after which the session is abandoned and the listener reconnects.
#: (A notification psycopg cannot decode — any bytes, in a SQL_ASCII database — raises
#: UnicodeDecodeError from whatever query is running when it arrives.)
RECOVERABLE: tuple[type[BaseException], ...] = (
    psycopg.Error,
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
    UnicodeDecodeError,
)
try:  # redis-py's errors do not all derive from OSError
    import redis.exceptions

    RECOVERABLE += (redis.exceptions.RedisError,)
except ImportError:  # pragma: no cover - redis is installed with channels-redis
    pass


class Listener:
    """Forward PostgreSQL events to the channel layer until ``stop()`` is called."""

    def __init__(
        self,
        *,
        layer: Any = None,
        database: str | None = None,
        channels: Sequence[str] | None = None,
        poll_interval: float | None = None,
        batch_size: int | None = None,
        use_lock: bool = True,
        prune_interval: float = 60.0,
        name: str = "pgevents-listener",
        coalesce: float = 0.0,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] | None = None,
        on_role: Callable[[str, psycopg.AsyncConnection[Any]], None] | None = None,
        handover: bool = True,
        tick: float = TICK,
        linger: float = LINGER,
        stream: float = STREAM,
        pacing: Pacing | None = None,
    ) -> None:
        settings = conf.get()
        self.layer = layer
        self.database = database or settings.database
        self.channels = tuple(settings.notify_channels if channels is None else channels)
        self.poll_interval = settings.poll_interval if poll_interval is None else poll_interval
        self.batch_size = batch_size or settings.batch_size
        self.query_timeout = settings.query_timeout
        self.retention = settings.retention
        self.use_lock = use_lock
        self.prune_interval = prune_interval
        #: Least time between two drains: under a stream of commits the sequencer (a writing
        #: transaction) runs at most 1/coalesce times per second, each time for more events.
        self.coalesce = coalesce
        self._last_drain = 0.0
        self.name = name
        #: ``host:pid``: named in heartbeats and (with the role) in ``application_name``.
        self.identity = identity.process()
        #: Called with ``"active"`` or ``"standby"`` and the session whenever the role is taken.
        self.on_role = on_role
        self.heartbeat_interval = settings.heartbeat_interval
        self._heartbeat_at = float("-inf")
        #: Since when drains have been returning full batches (the log is not emptied): the lag.
        self._behind_since: float | None = None
        #: Opens the session's connection (default: ``database``'s, from Django's settings).
        self.connect = connect or (
            lambda: db.connect(self.database, identity.application_name(self.name, self.identity))
        )
        #: Opens the connection that waits for writers when the listener stops polling (named
        #: apart: it is no listener session for ``pgevents_status``).
        self.connect_handover = connect or (
            lambda: db.connect(self.database, identity.application_name(HANDOVER_SESSION, self.identity))
        )
        self.backoff = Backoff(cap=settings.max_backoff)
        #: Polls the log while commits come, so writers can skip their wake-ups (False: every
        #: watched commit wakes the listener, as before the hand-over existed).
        self.handover = handover
        self.tick = tick
        self.linger = linger
        self.stream = stream
        #: The pause before the next look while polling, after a look that found events.
        self.pacing = pacing or Pacing()
        self._polling: Handover | None = None
        #: Over every session: how often the listener started polling, stopped, and had to
        #: wait for a writer's transaction to end before its last look at the log.
        self.polling_counts: dict[str, int] = {}
        self.active = False
        #: Connected and waiting for the advisory lock (another listener is active).
        self.standby = False
        self.connected = asyncio.Event()
        self.forwarded = 0
        self.last_forward_at: float | None = None
        self._published = 0
        #: The publish of the last positioned batch, while it runs: the next look at the log
        #: overlaps it, and the next publish waits for it (each channel's events in order).
        self._sending: asyncio.Task[None] | None = None
        self._stopping = False
        self._task: asyncio.Task[Any] | None = None
        self._last_prune = 0.0
        self._ignored = _IgnoredNotifications()
        #: Backend of a session that stopped answering: it may still hold the advisory lock.
        self._stale_backend: int | None = None
        self._backend_pid: int | None = None
        #: The session's connection while a session runs (``abandon`` closes it).
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def stop(self) -> None:
        """Ask the loop to finish; safe from a signal handler on the loop's thread."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def abandon(self) -> None:
        """Close the session's connections once the listener's loop is closed.

        A loop closed without its tasks cancelled and awaited (one a caller ran and closed
        itself) never runs the session's ``async with`` to its end: its connections would
        stay open on the server until the garbage collector reached them.
        """
        conn, self._conn = self._conn, None
        db.finish(conn)
        if self._polling is not None:
            self._polling.abandon()

    async def run(self) -> None:
        if self.layer is None:
            from channels.layers import get_channel_layer

            self.layer = get_channel_layer(conf.get().channel_layer)
            if self.layer is None:
                raise RuntimeError("pgevents needs a channel layer: set CHANNEL_LAYERS")
        while not self._stopping:
            self._task = asyncio.ensure_future(self._session())
            try:
                await self._task
            except asyncio.CancelledError:
                if self._stopping:
                    break
                raise
            except RECOVERABLE as exc:
                metrics.LISTENER_RECONNECTS.inc()
                if isinstance(exc, asyncio.TimeoutError) and self._backend_pid is not None:
                    self._stale_backend = self._backend_pid
                delay = self.backoff.next()
                logger.warning("listener session ended (%s: %s); reconnecting in %.2fs", type(exc).__name__, exc, delay)
                await self._sleep(delay)
            finally:
                self.active = self.standby = False
                metrics.LISTENER_ACTIVE.set(0)
                self.connected.clear()
        logger.info("listener stopped")

    async def _sleep(self, delay: float) -> None:
        self._task = asyncio.ensure_future(asyncio.sleep(delay))
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def _session(self) -> None:
        self._backend_pid = None
        conn = self._conn = await self._bounded(self.connect())
        async with conn:
            await self._end_stale_backend(conn)
            self._backend_pid = conn.info.backend_pid
            await self._acquire_lock(conn)
            for statement in sql.listen((envelope.INTERNAL_CHANNEL, *self.channels)):
                await self._bounded(conn.execute(statement))
            self.active = True
            metrics.LISTENER_ACTIVE.set(1)
            self.connected.set()
            logger.info("listener active; LISTEN %s", ", ".join((envelope.INTERNAL_CHANNEL, *self.channels)))
            self._role("active", conn)
            self._heartbeat_at = float("-inf")  # say so at once: pages stalled by a fail-over recover
            polling = self._polling = Handover(
                self.connect_handover,
                enabled=self.handover,
                tick=self.tick,
                linger=self.linger,
                stream=self.stream,
                counts=self.polling_counts,
            )
            try:
                await self._bounded(polling.start(conn))
                await self._catch_up(conn)
                self.backoff.reset()
                await self._loop(conn, polling)
            finally:
                self._polling = None
                await self._abandon_send()
                await polling.close()

    async def _loop(self, conn: psycopg.AsyncConnection[Any], polling: Handover) -> None:
        # ``stop`` sets ``_stopping`` as well as cancelling the task: a cancellation that
        # arrives just as an awaited library call completes can be swallowed by it.
        moved, took = 0, 0.0  # what the last look at the log found, and how long it took
        while not self._stopping:
            await self._heartbeat()
            polling.check()
            # While polling, the next look follows soon if the last one found events (more
            # are likely committed meanwhile: at once for one, after a pause that lets the
            # batch grow for several), overlapping their publish; a tick later if it found
            # none. Before any other wait the last publish completes (or ends the session).
            if polling.polling and moved:
                woken = await self._wait(conn, self.pacing.pause(moved, took))
            else:
                await self._sent()
                woken = await self._wait(conn, self.tick if polling.polling else None)
            moved = 0
            due = self._poll_due()
            if polling.polling or woken or due:
                transient = due or bool(woken & WAKE_TRANSIENT) or polling.takes_transient
                if self.coalesce:
                    delay = self._last_drain + self.coalesce - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                # A look at an empty log is a read (the sequencer writes only what it positions).
                started = time.monotonic()
                moved, taken = await self._drain(conn, transient)
                took = time.monotonic() - started
                if await self._bounded(polling.moved(conn, moved, taken)):
                    # the last look before sleeping on LISTEN
                    moved, taken = await self._drain(conn, polling.takes_transient)
                    await self._bounded(polling.moved(conn, moved, taken))
            now = time.monotonic()
            if now - self._last_prune >= self.prune_interval:
                self._last_prune = now
                removed = await log.prune(conn, self.retention, timeout=self.query_timeout)
                if removed:
                    logger.info("pruned %d events older than %.0fs", removed, self.retention)

    async def _bounded(self, call: Awaitable[T]) -> T:
        """``call``, or ``TimeoutError`` after ``QUERY_TIMEOUT``: a hung server or layer ends
        the session (and the loop reconnects) instead of stalling the listener forever. (A
        timeout scope, not ``wait_for``: no task of its own for every statement.)"""
        async with asyncio.timeout(self.query_timeout):
            return await call

    async def _end_stale_backend(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Terminate our previous backend if it stopped answering (a hung or half-dead
        connection), so its advisory lock does not keep every listener standing by until
        the server's TCP keepalive notices."""
        if self._stale_backend is None:
            return
        pid, self._stale_backend = self._stale_backend, None
        try:
            await self._bounded(conn.execute("SELECT pg_terminate_backend(%s)", (pid,)))
            logger.info("terminated the unresponsive previous listener backend (pid %d)", pid)
        except psycopg.Error as exc:
            logger.warning("could not terminate the previous listener backend (pid %d): %s", pid, exc)

    async def _acquire_lock(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not self.use_lock:
            return
        waiting_logged = False
        while True:
            cur = await self._bounded(conn.execute("SELECT pg_try_advisory_lock(%s)", (conf.get().listener_lock,)))
            row = await cur.fetchone()
            if row and row[0]:
                self.standby = False
                return
            self.standby = True
            if not waiting_logged:
                await self._log_lock_holder(conn)
                self._role("standby", conn)
                waiting_logged = True
            await asyncio.sleep(self.poll_interval)

    async def _log_lock_holder(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Say who holds the lock. Advisory locks need no privilege: any role that can connect
        can take this one and keep every listener standing by; that must not look normal."""
        key = conf.get().listener_lock
        cur = await self._bounded(
            conn.execute(
                "SELECT a.pid, a.usename, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
                " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1",
                (key >> 32, key & 0xFFFFFFFF),
            )
        )
        holder = await cur.fetchone()
        if holder is None or is_listener_session(holder[2] or ""):
            logger.info("another listener is active; standing by")
        else:
            logger.warning(
                "standing by: the listener lock is held by pid %s (role %s, application %r), which is not a "
                "pgevents listener; nothing is delivered until it lets go (pg_terminate_backend(%s) ends it)",
                *holder,
                holder[0],
            )

    def _role(self, role: str, conn: psycopg.AsyncConnection[Any]) -> None:
        if self.on_role is not None:
            self.on_role(role, conn)

    async def _heartbeat(self) -> None:
        """At most every ``heartbeat_interval``: "active, this far behind" to every server."""
        now = time.monotonic()
        if now - self._heartbeat_at < self.heartbeat_interval:
            return
        self._heartbeat_at = now
        lag = 0.0 if self._behind_since is None else now - self._behind_since
        await relay.heartbeat(self.layer, self.identity, lag, self.query_timeout)

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Re-send what a previous listener may not have forwarded, then drain the log and
        the transient table (events committed while no listener listened)."""
        self._published = (await self._bounded(log.cursors(conn))).get("published", 0)
        self._behind_since = time.monotonic()
        while True:
            events = await self._bounded(log.positioned_after(conn, self._published, self.batch_size))
            if not events:
                break
            await self._forward(log.Look(events, []))
            await self._sent()  # the next read starts after what it confirms
            await self._heartbeat()
        await self._drain(conn, transient=True)

    async def _drain(self, conn: psycopg.AsyncConnection[Any], transient: bool) -> tuple[int, int]:
        """Position and forward what has committed, and with ``transient`` what the transient
        table holds; returns how many events, and how many of them non-durable. One round
        trip when nothing is pending, and then no write either (``pgevents_assign``, 0009)."""
        moved = taken = 0
        while True:
            found = await self._bounded(log.look(conn, self.batch_size, self._published, transient))
            if found.events or found.transient:
                await self._forward(found)
                moved += len(found.events) + len(found.transient)
                taken += len(found.transient)
            if len(found.events) < self.batch_size and len(found.transient) < self.batch_size:
                self._behind_since = None
                self._last_drain = time.monotonic()
                return moved, taken
            if self._behind_since is None:
                self._behind_since = time.monotonic()
            await self._heartbeat()  # a long drain still says how far behind it is

    async def _forward(self, found: log.Look) -> None:
        """Publish what a look found once the previous batch is published. When the next look
        follows at once (the listener polls, or a batch was full), the publish runs while the
        caller looks; otherwise it completes here. Only a completed publish moves the
        ``published`` mark that the next sequencer call records (what a restart re-sends
        after); non-durable events have no id, and are not re-sent."""
        events = found.events
        messages = [envelope.layer_message(e.channel, e.frame, e.id, e.prev) for e in events]
        messages += [envelope.layer_message(channel, frame) for channel, frame in found.transient]
        await self._sent()
        publish = self._publish(messages, events[-1].id if events else None)
        full = max(len(events), len(found.transient)) >= self.batch_size
        if full or (self._polling is not None and self._polling.polling):
            self._sending = asyncio.ensure_future(publish)
        else:
            await publish

    async def _publish(self, messages: list[envelope.Event], last: int | None) -> None:
        sent = await relay.publish(self.layer, messages, self.query_timeout)
        if last is not None:
            self._published = last
        self._count(len(messages), sent)

    async def _sent(self) -> None:
        """Wait for the publish in flight, if any; raise what ended it."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            await sending

    async def _abandon_send(self) -> None:
        """At the end of a session: a publish still in flight is cancelled (the next session
        re-sends everything after the last completed one)."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, *RECOVERABLE):
                await sending

    def _count(self, n: int, messages: int) -> None:
        self.forwarded += n
        self.last_forward_at = time.time()
        metrics.FORWARDED.inc(n)
        metrics.LAYER_MESSAGES.inc(messages)

    async def _wait(self, conn: psycopg.AsyncConnection[Any], most: float | None = None) -> int:
        """Wait for notifications, at most ``most`` seconds if given; forward plain ones.
        Returns what to drain (``WAKE_*`` bits)."""
        woken = 0
        plain: list[envelope.Event] = []
        # Wake at least every heartbeat interval; drain on a wake-up or once the poll is due.
        timeout = max(0.0, min(self.poll_interval + self._last_drain - time.monotonic(), self.heartbeat_interval))
        if most is not None:
            timeout = min(timeout, most)
        try:
            # Notifications that arrived during other queries come first, all at once: each
            # adds to what to drain (a later ignored one must not cancel an earlier wake-up).
            notes = 0
            async for note in conn.notifies(timeout=timeout, stop_after=1):
                woken |= self._take(note.channel, note.payload, plain)
                notes += 1
            if notes:  # whatever else has already arrived (none did if nothing came in time)
                async for note in conn.notifies(timeout=0.0):
                    woken |= self._take(note.channel, note.payload, plain)
        except UnicodeDecodeError as exc:
            # A SQL_ASCII database accepts any bytes in a payload, and psycopg cannot decode
            # them. The rest of that batch is lost with it, wake-ups included: look everywhere.
            metrics.NOTIFICATIONS.labels("undecodable").inc()
            self._ignored.add(len(exc.object))
            woken = WAKE_LOG | WAKE_TRANSIENT
        if plain:
            await self._sent()
            self._count(len(plain), await relay.publish(self.layer, plain, self.query_timeout))
        return woken

    def _poll_due(self) -> bool:
        """The periodic poll of the log, also the liveness probe of an idle connection: due once
        ``poll_interval`` has passed since the last drain, whatever woke the loop meanwhile (a
        stream of plain NOTIFYs or heartbeats must not put it off)."""
        return time.monotonic() - self._last_drain >= self.poll_interval

    def _take(self, channel: str, payload: str, plain: list[envelope.Event]) -> int:
        """Classify one notification: a plain one is queued in ``plain`` as its raw payload; on
        the internal channel only the two wake-ups mean anything. Never raises."""
        if channel != envelope.INTERNAL_CHANNEL:
            metrics.NOTIFICATIONS.labels("plain").inc()
            plain.append(envelope.layer_message(channel, envelope.plain_frame(channel, payload)))
            return 0
        if payload == envelope.WAKE_LOG:
            metrics.NOTIFICATIONS.labels("wakeup").inc()
            return WAKE_LOG
        if payload == envelope.WAKE_TRANSIENT:
            metrics.NOTIFICATIONS.labels("wakeup_transient").inc()
            return WAKE_TRANSIENT
        metrics.NOTIFICATIONS.labels("ignored").inc()
        self._ignored.add(len(payload))
        return 0


class _IgnoredNotifications:
    """Logs notifications ignored on the internal channel: the first at once, then at most
    one line per ``every`` seconds with how many came meanwhile (a flood must not flood the log)."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.count = 0
        self.logged_at = -every

    def add(self, size: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= self.every:
            logger.warning(
                "ignored %d notification(s) that pgevents' triggers never send (a payload on the internal "
                "channel %r, or bytes that cannot be decoded; latest %d bytes): another database role sent them",
                self.count,
                envelope.INTERNAL_CHANNEL,
                size,
            )
            self.count = 0
            self.logged_at = now
