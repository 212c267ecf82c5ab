"""Server-Sent Events: the same subscription semantics over plain HTTP.

Every event carries ``id:``; the standard ``Last-Event-ID`` header (or ``?last_event_id=``)
resumes. A stream holds at most ``MAX_SEND_BUFFER`` bytes for its client, counting what the
server's socket still holds (``transport``; under daphne that needs
``routing.ServerSendMiddleware`` around the HTTP application): a client that stops reading
gets a ``too_slow`` error as an ``event: control``, the stream ends, and the browser's
EventSource resumes with ``Last-Event-ID``, losing nothing. If it does not even read that
within ``CLOSE_GRACE``, its connection is dropped. Replays go at the client's pace.

``html/<channel>/`` is the same stream for htmx's ``sse`` extension: shared regions' HTML as
named events instead of JSON frames, resumed by ``Last-Event-ID`` just the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse

from pgevents import conf, metrics, policy
from pgevents.core.envelope import control
from pgevents.core.protocol import ProtocolError, parse_query
from pgevents.delivery import admission, sessions, transport
from pgevents.delivery.flow import Flow
from pgevents.delivery.gate import parsed
from pgevents.delivery.outbox import Outbox
from pgevents.delivery.runtime import get_hub
from pgevents.signing import BadToken

logger = logging.getLogger(__name__)

KEEPALIVE = 15.0
_CLOSE = object()
SESSION_ENDED = control("error", code="session_ended", message="the session has ended; log in again")
TOO_SLOW = control("error", code="too_slow", message="the stream fell too far behind; reconnect with Last-Event-ID")
STATUS = {"unknown_channel": 404, "forbidden": 403, "unavailable": 503}


def _control_chunk(frame: str) -> str:
    return f"event: control\ndata: {frame}\n\n"


class _StreamSink:
    """A subscription's sink for one stream: chunks wait in a bounded outbox."""

    def __init__(self, outbox: Outbox, flow: Flow | None, client: Any) -> None:
        self.outbox = outbox
        self.flow = flow
        self.client = client
        self.slow = False

    def _put(self, chunk: str) -> None:
        if not self.slow and not self.outbox.offer(chunk, len(chunk)):
            self.cut_off()

    def cut_off(self) -> None:
        """The client stopped reading: drop its backlog, queue the resume hint, end."""
        self.slow = True
        metrics.SLOW_CLIENTS.inc()
        logger.info("ending an SSE stream that stopped reading (%s)", self.client)
        self.outbox.clear()
        self.outbox.put(_control_chunk(TOO_SLOW))
        self.outbox.put(_CLOSE)
        if self.flow is not None:
            self.flow.release()  # write the hint now, behind what the socket already holds
        transport.abort_later(self.outbox.socket, conf.get().close_grace)

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        if replay:
            await self.outbox.room()  # replaying: at the client's pace
        self._put((f"id: {id}\n" if id is not None else "") + f"data: {frame}\n\n")

    async def send_control(self, frame: str) -> None:
        self._put(_control_chunk(frame))


async def _session_alive(session_key: str | None, user: object) -> bool:
    try:
        return await sessions.still_logged_in(session_key, user)
    except Exception:  # the database is down or slow: keep serving, check again later
        return True


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"type": "error", "code": code, "message": message}, status=status)


class _HtmlStreamSink(_StreamSink):
    """An HTML stream for htmx's ``sse`` extension: each event becomes, per shared region,
    ``event: <region name>`` with the region's HTML as its data (``sse-swap`` swaps it in;
    elements in it marked ``hx-swap-oob`` go out of band). An event that changes no region's
    HTML (the last of a run carries it) still sends its ``id:``, so ``Last-Event-ID`` always
    names the last event handled: a reconnecting ``EventSource`` resumes after it."""

    def __init__(self, outbox: Outbox, flow: Flow | None, client: Any, names: dict[str, str]) -> None:
        super().__init__(outbox, flow, client)
        self.names = names  # region id -> event name

    def _html_chunks(self, frame: str) -> str:
        message = parsed(frame) or {}
        chunks = []
        for rid, entry in (message.get("html") or {}).items():
            name = self.names.get(rid)
            if name is not None and isinstance(entry, dict) and entry.get("op") == "region":
                lines = str(entry.get("html") or "").splitlines() or [""]
                chunks.append(f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n")
        return "".join(chunks)

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        if replay:
            await self.outbox.room()
        chunk = self._html_chunks(frame) + (f"id: {id}\n\n" if id is not None else "")
        if chunk:
            self._put(chunk)

    async def send_control(self, frame: str) -> None:
        self._put(self._html_chunks(frame) + _control_chunk(frame))  # a reset brings the regions' HTML


async def sse(request: HttpRequest, channel: str) -> HttpResponseBase:
    """``GET /pgevents/sse/<channel>/`` → ``text/event-stream`` of JSON frames."""
    return await _serve(request, channel, html=False)


async def html(request: HttpRequest, channel: str) -> HttpResponseBase:
    """``GET /pgevents/html/<channel>/?regions=…`` → ``text/event-stream`` of HTML, for htmx.

    The regions (signed by ``{% pgevents_htmx %}``) name a ``src`` view each; the server
    renders it once per change per process and streams it as ``event: <name>``."""
    return await _serve(request, channel, html=True)


async def _serve(request: HttpRequest, channel: str, *, html: bool) -> HttpResponseBase:
    try:
        command = parse_query(channel, request.META.get("QUERY_STRING", ""), request.headers.get("Last-Event-ID"))
    except ProtocolError as exc:
        return _error(exc.code, exc.message, 400)
    names: dict[str, str] = {}
    if html:
        try:
            names = {spec.id: spec.name or spec.channel for spec in admission.regions(command)}
        except BadToken as exc:
            return _error("bad_request", f"shared region: {exc}", 400)
        if not names:
            return _error("bad_request", "an HTML stream needs regions= (written by {% pgevents_htmx %})", 400)
    user = await sessions.request_user(request)
    hub = get_hub()
    decision = await admission.decide(user, command, hub.reader)
    if isinstance(decision, policy.Denial):
        return _error(decision.code, decision.message, STATUS.get(decision.code, 400))

    server_send = getattr(request, "scope", {}).get(transport.SERVER_SEND)
    protocol = transport.daphne_protocol(server_send)
    flow = Flow.attach(protocol)
    outbox = Outbox(conf.get().max_send_buffer, transport.find(server_send))
    client = request.META.get("REMOTE_ADDR")
    sink = _HtmlStreamSink(outbox, flow, client, names) if html else _StreamSink(outbox, flow, client)
    sub = admission.subscription(command, decision, sink, hub.reader, hub.renders)

    # A logged-in stream ends when its session does (logout, expiry), like a WebSocket.
    interval = conf.get().session_check_interval if user.is_authenticated else 0
    session_key = request.session.session_key

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        await hub.join(sub)
        unwatch = hub.pipeline.watch(sink.send_control)
        if hub.pipeline.state != "ok":
            await sink.send_control(hub.pipeline.frame())
        loop = asyncio.get_running_loop()
        check_at = loop.time() + interval
        quiet_since = loop.time()
        try:
            while True:
                if flow is not None:
                    await flow.writable()  # daphne: hand over no more than the socket takes
                wait = KEEPALIVE if not interval else max(0.0, min(KEEPALIVE, check_at - loop.time()))
                try:
                    # A scope, not wait_for (which on Python 3.11 can swallow the cancellation
                    # of a client that went away just as an item arrived).
                    async with asyncio.timeout(wait):
                        item = await outbox.get()
                except TimeoutError:
                    item = None
                if interval and loop.time() >= check_at:
                    check_at = loop.time() + interval
                    if not await _session_alive(session_key, user):
                        yield _control_chunk(SESSION_ENDED)
                        return
                if item is _CLOSE:
                    return
                if item is not None:
                    quiet_since = loop.time()
                    yield str(item)
                elif loop.time() - quiet_since >= KEEPALIVE:
                    quiet_since = loop.time()
                    yield ": keep-alive\n\n"
        finally:
            unwatch()
            await hub.leave(sub)
            if flow is not None:
                flow.detach()

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
