"""A sink wrapper that sends shared regions' HTML with the events: render once, push HTML.

A subscription that names shared regions (signed ``RegionSpec``s) is wrapped in a
``SharedSink``. Each event it sends gets an ``html`` field, one entry per region
(``{"<region id>": {...}}``):

- ``{"op": "row", "key": "12", "html": "<tr>…</tr>"}`` — the row as the region's ``row`` URL
  renders it now; ``"html": null`` when the row is gone (DELETE, or the row view answers 404);
- ``{"op": "region", "html": "…"}`` — the region's inner HTML from its ``src`` URL (a change
  that names no row, a burst, a ``reset``);
- ``{"op": "skip"}`` — nothing to do for this event: a later one of the same burst carries
  the region's HTML.

A region without an entry (a render that did not answer 200, a region with no URL for the
case) is left to the client, which fetches as it would for a per-user region.

Renders come from the process's ``RenderCache``, keyed by URL and event id, so a thousand
subscribers cost one render per change; the frames built from them (the ``html`` field, the
WebSocket frame) are composed once per run of events and set of regions, and written to
each live socket as they are (``write_nowait``, as the hub writes plain events), so the
work per subscriber is a write, not a parse, an encoding and a pass through ASGI. The frames
wait in an ordered queue while their renders run: the hub hands the event over and goes on
with other subscribers at once, and each client still gets its frames in order. A run of
more events than ``BURST`` queued at once becomes one ``region`` render at the last event
(one refresh).

Live writes are gathered per process (``Waves``): the sinks a pass of the hub reached are
looked at in one callback, and those waiting for the same composed run are written by one
callback on it, so a change costs each subscriber a list entry and a write, not objects
that live until the frames are ready (``Waves`` says why that matters).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pgevents.core.envelope import dumps
from pgevents.delivery.fastsend import text_frame
from pgevents.delivery.gate import parsed
from pgevents.delivery.render import ANSWERS, RegionSpec, RenderCache, Rendered
from pgevents.delivery.subscription import Sink

logger = logging.getLogger(__name__)

#: More queued events than this become one refresh of the region (the client's own limit).
BURST = 20
_ROW_OPS = ("INSERT", "UPDATE")
_Item = tuple[str, int | None, bool | None]  # (frame, id, replay); replay None: a control frame


def fill(row: str, key: object) -> str:
    """The row URL for ``key`` (the same encoding as the client's)."""
    return row.replace("{key}", quote(str(key), safe=""))


def with_html(frame: str, html: dict[str, Any]) -> str:
    """``frame`` (a JSON object) with an ``html`` field added."""
    return frame if not html else f'{frame[:-1]},"html":{dumps(html)}}}'


def decide(spec: RegionSpec, event: dict[str, Any]) -> tuple[str, str | None] | None:
    """What the server sends a shared region for one event (the ``pgevents.testing`` helper
    asks the same): ``("gone", key)`` the row is removed, no render; ``("row", key)`` the
    row's HTML from ``spec.row``; ``("region", None)`` the region's HTML from ``spec.src``;
    None: nothing is pushed, the client decides (and fetches) as for a per-user region.
    """
    op = event.get("op")
    leaves = event.get("type") == "leave"
    if op is None and not leaves:
        return None  # a plain NOTIFY: nothing to render
    row = event.get("row") if isinstance(event.get("row"), dict) else None
    old = event.get("old") if isinstance(event.get("old"), dict) else None
    key = (row or {}).get(spec.key, (old or {}).get(spec.key))
    if spec.row and key is not None and (leaves or op == "DELETE"):
        return ("gone", str(key))
    if spec.row and op in _ROW_OPS and key is not None:
        return ("row", str(key))
    if spec.src:
        return ("region", None)
    return None


_Composed = asyncio.Future[list[tuple[str, bytes]]]


class Waves:
    """The live writes of one process's shared sinks: one callback per pass of the hub and
    one per composed run, whatever the number of subscribers.

    Why: a change reaches every subscriber of the process in one pass of the hub. When each
    sink scheduled a callback of its own (to let the rest of the hub's batch join its queue)
    and added a callback of its own to the composed run, every subscriber kept a few objects
    alive until its frames were written: with 1,000 subscribers, thousands of container
    objects per change, which made the cyclic garbage collector run four times as often as
    for plain events. Its full collections walk every connection of the process and stop it
    for 100-300 ms with 1,000 of them (measured: ``bench.regions --stages``); up to twice a
    minute, they were the late changes. Here the sinks of a pass join one list, examined by one
    callback, and those waiting for the same run join one list on its future, written by one
    callback, with the run's frames joined into one buffer once.
    """

    def __init__(self) -> None:
        self._kicked: list[SharedSink] = []
        self._waiting: dict[_Composed, list[SharedSink]] = {}

    def kick(self, sink: SharedSink) -> None:
        """Look at ``sink``'s queue once the current pass (the hub's batch) is over."""
        self._kicked.append(sink)
        if len(self._kicked) == 1:
            asyncio.get_running_loop().call_soon(self._kick_all)

    def _kick_all(self) -> None:
        kicked, self._kicked = self._kicked, []
        for sink in kicked:
            sink._kick()

    def wait(self, composed: _Composed, sink: SharedSink) -> None:
        """Write ``composed`` to ``sink``'s socket when it is ready."""
        waiting = self._waiting.get(composed)
        if waiting is None:
            waiting = self._waiting[composed] = []
            composed.add_done_callback(self._written)
        waiting.append(sink)

    def _written(self, composed: _Composed) -> None:
        sinks = self._waiting.pop(composed, [])
        if composed.cancelled() or composed.exception() is not None:
            logger.error("composing shared-region frames failed", exc_info=composed.exception())
            return
        wire = b"".join(wire for _, wire in composed.result())
        for sink in sinks:
            try:
                sink.write(wire)
            except Exception:  # one socket failing holds up nobody else
                logger.exception("writing shared-region frames failed")


_WAVES: weakref.WeakKeyDictionary[RenderCache, Waves] = weakref.WeakKeyDictionary()


def waves(cache: RenderCache) -> Waves:
    """The ``Waves`` of the process whose renders ``cache`` keeps (one per hub)."""
    found = _WAVES.get(cache)
    if found is None:
        found = _WAVES[cache] = Waves()
    return found


class SharedSink:
    """Adds the HTML of ``specs`` to the frames it passes to ``inner``, in order."""

    def __init__(self, inner: Sink, specs: Sequence[RegionSpec], cache: RenderCache) -> None:
        self.inner = inner
        self.specs = tuple(specs)
        self.cache = cache
        self._spec_ids = tuple(spec.id for spec in self.specs)
        self._write = getattr(inner, "write_nowait", None)
        self._waves = waves(cache)
        self._queue: list[_Item] = []
        self._task: asyncio.Task[None] | None = None
        self._kicked = False
        #: The composed run the direct path is writing when it is ready (frames after it wait).
        self._pending: _Composed | None = None

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        self._put((frame, id, replay))

    async def send_control(self, frame: str) -> None:
        self._put((frame, None, None))  # behind the events before it

    def _put(self, item: _Item) -> None:
        self._queue.append(item)
        if not self._kicked and (self._task is None or self._task.done()):
            self._kicked = True
            # After the rest of the hub's batch has joined the queue: it is one run.
            self._waves.kick(self)

    def _kick(self) -> None:
        """The common case without a task of its own: live events only, a socket written
        directly, nothing before them still waiting. The run's composed frames are written
        when they are ready, with every other subscriber of the process waiting for the same
        run (``Waves``): per subscriber, a list entry and a write."""
        self._kicked = False
        idle = self._pending is None or self._pending.done()
        if self._write is not None and idle and self._queue and all(item[2] is False for item in self._queue):
            run, self._queue = self._queue, []
            self._pending = self._composed(run)
            self._waves.wait(self._pending, self)
            return
        if self._queue:
            self._task = asyncio.ensure_future(self._run())

    def write(self, wire: bytes) -> None:
        """Live frames, composed, to the socket directly (``Waves``)."""
        assert self._write is not None
        self._write(wire)

    async def _run(self) -> None:
        if self._pending is not None and not self._pending.done():
            await asyncio.wait([self._pending])  # its frames go first
        while self._queue:
            await asyncio.sleep(0)  # the rest of the hub's batch joins the queue first
            items, self._queue = self._queue, []
            try:
                await self._send(items)
            except Exception:  # the client's connection failed: its own close handles it
                logger.exception("sending shared-region frames failed")

    async def _send(self, items: list[_Item]) -> None:
        run: list[_Item] = []
        for item in items:
            if item[2] is None:
                await self._flush(run)
                run = []
                await self.inner.send_control(await self._control(item[0]))
            else:
                run.append(item)
        await self._flush(run)

    def _composed(self, run: list[_Item]) -> _Composed:
        """The run's frames with their HTML, composed once per process for every subscriber
        showing the same regions (the same frames for the same run)."""
        key = (tuple((frame, id) for frame, id, _ in run), self._spec_ids)
        return self.cache.compose(key, lambda: self._compose(run))

    async def _flush(self, run: list[_Item]) -> None:
        if not run:
            return
        composed = await self._composed(run)
        for (_, id, replay), (text, wire) in zip(run, composed, strict=True):
            if self._write is not None and not replay:
                self._write(wire)  # live: the direct write, with the slow-client rule of the sink's own path
            else:
                await self.inner.send_event(text, id, replay=bool(replay))

    async def _compose(self, run: list[_Item]) -> tuple[list[tuple[str, bytes]], bool]:
        """The run's frames with their HTML (text and WebSocket frame), and whether every
        render answered (a failed one is not kept: see ``RenderCache.compose``)."""
        # Every render of the run starts before the first is awaited: they run side by side.
        if len(run) > BURST:
            plans = self._burst(run)
        else:
            plans = [self._plan(frame, id, run, i) for i, (frame, id, _) in enumerate(run)]
        composed: list[tuple[str, bytes]] = []
        complete = True
        for (frame, _, _), planned in zip(run, plans, strict=True):
            html, answered = await _resolve(planned)
            complete = complete and answered
            text = with_html(frame, html)
            composed.append((text, text_frame(text)))
        return composed, complete

    def _plan(self, frame: str, id: int | None, run: list[_Item], index: int) -> dict[str, Any]:
        """What each region gets with this event: values are dicts, or futures of renders."""
        if id is None:
            return {}  # a plain NOTIFY: no version to render at; the client decides
        event = parsed(frame) or {}
        plan: dict[str, Any] = {}
        for spec in self.specs:
            match decide(spec, event):
                case ("gone", key):
                    plan[spec.id] = {"op": "row", "key": key, "html": None}
                case ("row", key):
                    assert spec.row is not None and key is not None
                    plan[spec.id] = ("row", key, self.cache.get(fill(spec.row, key), id, spec.prefix))
                case ("region", _) if index < len(run) - 1 and not spec.row:
                    plan[spec.id] = {"op": "skip"}  # the run's last event refreshes the region
                case ("region", _):
                    assert spec.src is not None
                    plan[spec.id] = ("region", None, self.cache.get(spec.src, run[-1][1], spec.prefix))
        return plan

    def _burst(self, run: list[_Item]) -> list[dict[str, Any]]:
        last = run[-1][1]
        plans: list[dict[str, Any]] = [{} for _ in run]
        for spec in self.specs:
            if spec.src is None or last is None:
                continue  # nothing to render the whole region from: the client reloads it
            for plan in plans[:-1]:
                plan[spec.id] = {"op": "skip"}
            plans[-1][spec.id] = ("region", None, self.cache.get(spec.src, ("burst", last), spec.prefix))
        return plans

    async def _control(self, frame: str) -> str:
        """A ``reset`` carries the regions' current HTML: the client needs no reload."""
        message = parsed(frame)
        if not message or message.get("type") != "reset":
            return frame
        version = ("reset", message.get("last_event_id"))
        plan = {s.id: ("region", None, self.cache.get(s.src, version, s.prefix)) for s in self.specs if s.src}
        html, _ = await _resolve(plan)
        return with_html(frame, html)


async def _resolve(plan: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The plan with its renders awaited; regions whose render did not answer 200 are left
    out (the client fetches them), a row view's 404 means the row is gone. The flag: every
    render answered (200, 404 or 410)."""
    html: dict[str, Any] = {}
    answered = True
    for rid, value in plan.items():
        if isinstance(value, dict):
            html[rid] = value
            continue
        op, key, future = value
        rendered: Rendered = await future
        if rendered.status == 200:
            html[rid] = {"op": op, "html": rendered.html} | ({"key": key} if key is not None else {})
        elif op == "row" and rendered.status in (404, 410):
            html[rid] = {"op": "row", "key": key, "html": None}
        else:
            answered = answered and rendered.status in ANSWERS
    return html, answered
