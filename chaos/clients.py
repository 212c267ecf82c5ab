"""What every chaos client does: drop and resume on its plan, and record what it receives.

A client subscribes first either before the writer starts or at a moment of its plan
(``plan.join_after``), with no resume point. From then on it records every event it receives (id, row key and revision, whether the row is
intact, when) per channel, and resumes after the last id it received: ``?last_event_id=``
on the one-channel URL, ``"last_event_id"`` in a multiplexed subscribe, ``Last-Event-ID``
(or ``?last_event_id=``, half of the time) for SSE. Deliberate drops follow the client's own
seeded plan (``plan.Drops``): connected for a while, then closed politely or cut (TCP
abort), away for a moment, back on a random server. A connection that ends any other way
(a server killed, an error) is counted as involuntary and retried at once on the other
server, then with a short backoff. The transports are in ``chaos.transports``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .plan import Config, Drops
from .schema import Received, payload


@dataclass
class Stream:
    """What one client received on one channel."""

    channel: str
    last_id: int | None = None
    subscribed: bool = False
    #: When the first ``subscribed`` arrived: changes committed after it are owed.
    start_at: float | None = None
    got: list[Received] = field(default_factory=list)
    seen: set[tuple[str, int]] = field(default_factory=set)


class ConnectionEnded(Exception):
    pass


class Client:
    kind = ""

    def __init__(
        self, name: str, channels: tuple[str, ...], ports: list[int], cfg: Config, join_after: float | None = None
    ) -> None:
        self.name = name
        self.ports = ports
        #: Seconds after the writer starts at which the client first connects (None: before).
        self.join_after = join_after
        #: When the writer started (set by the run with ``phase = "chaos"``).
        self.started = 0.0
        self.streams = {ch: Stream(ch) for ch in channels}
        self.plan = Drops.for_client(cfg, name)
        #: "before" (no drops: the writer has not started), "chaos", "calm" (the run is settling).
        self.phase = "before"
        #: Deliberate drops: (dropped at, back at).
        self.away: list[tuple[float, float]] = []
        self.involuntary: list[float] = []
        self.connections = 0
        #: Control messages that break the guarantee or the protocol (``reset``, ``error`` codes…).
        self.problems: Counter[str] = Counter()
        self.notes: list[str] = []
        self.ready = asyncio.Event()
        self._conn: Any = None
        self._dropping = False
        self._refused = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self.phase = "stopped"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close(abort=True)

    async def _run(self) -> None:
        if self.join_after is not None:
            while self.phase == "before":
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, self.started + self.join_after - time.monotonic()))
        port = self.ports[self.plan.server(len(self.ports))]
        failures = 0
        while self.phase != "stopped":
            connected_for, away_for, abort = self.plan.next()
            self._dropping = self._refused = False
            try:
                self.connections += 1
                self._conn = await self._open(port)
                dropper = asyncio.ensure_future(self._drop_after(connected_for, abort))
                try:
                    await self._read()
                finally:
                    dropper.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection ended: why is recorded below
                if not self._dropping:
                    self._note(f"{type(exc).__name__}: {exc}")
            finally:
                await self._close(abort=True)
            if self._dropping:
                failures = 0
                dropped = time.monotonic()
                await asyncio.sleep(away_for)
                self.away.append((dropped, time.monotonic()))
                port = self.ports[self.plan.server(len(self.ports))]
            else:
                self.involuntary.append(time.monotonic())
                failures += 1
                await asyncio.sleep(0 if failures == 1 else min(1.0, 0.05 * 2**failures))
                port = self.ports[(self.ports.index(port) + 1) % len(self.ports)]

    async def _drop_after(self, seconds: float, abort: bool) -> None:
        await asyncio.sleep(seconds)
        while self.phase == "before":
            await asyncio.sleep(0.1)
        if self.phase != "chaos":
            return
        self._dropping = True
        await self._close(abort)

    def _note(self, text: str) -> None:
        if len(self.notes) < 20:
            self.notes.append(f"{time.monotonic():.3f} {text}")

    # -- messages ----------------------------------------------------------------------
    def handle(self, msg: dict[str, Any], sse_id: str | None = None) -> None:
        now = time.monotonic()
        kind = msg.get("type")
        stream = self.streams.get(msg.get("channel", ""))
        if kind == "event":
            if stream is None or not isinstance(msg.get("id"), int):
                self.problems["unexpected event"] += 1
                self._note(f"unexpected event {str(msg)[:200]}")
                return
            id_ = msg["id"]
            if sse_id is not None and sse_id != str(id_):
                self.problems["sse id differs from the event's"] += 1
            row = msg.get("row") or {}
            k, rev, size = row.get("k"), row.get("rev"), row.get("size")
            intact = (
                isinstance(k, str)
                and isinstance(rev, int)
                and isinstance(size, int)
                and row.get("payload") == payload(k, rev, size)
                and msg.get("op") == ("INSERT" if rev == 0 else "UPDATE")
            )
            key = (str(k), rev if isinstance(rev, int) else -1)  # (k, rev) itself when intact
            stream.got.append((id_, key[0], key[1], intact, now))
            stream.seen.add(key)
            stream.last_id = id_ if stream.last_id is None else max(stream.last_id, id_)
        elif kind == "subscribed" and stream is not None:
            if stream.start_at is None:
                stream.start_at = now
            if stream.last_id is None:
                stream.last_id = msg.get("last_event_id")
            stream.subscribed = True
            if all(s.subscribed for s in self.streams.values()):
                self.ready.set()
        elif kind == "reset":
            self.problems["reset"] += 1
            self._note(f"reset {msg}")
            if stream is not None:
                stream.last_id = msg.get("last_event_id")
        elif kind == "error":
            code = str(msg.get("code"))
            if code not in ("unavailable", "too_slow"):  # clear answers to a fault or a slow read
                self.problems[f"error {code}"] += 1
            self._note(f"error {msg}")
            if stream is not None:
                self._refused = True  # a refused subscription: start again on a new connection

    # -- per transport -----------------------------------------------------------------
    async def _open(self, port: int) -> Any:
        raise NotImplementedError

    async def _read(self) -> None:
        raise NotImplementedError

    async def _close(self, abort: bool) -> None:
        raise NotImplementedError
