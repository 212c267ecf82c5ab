"""Server-Sent Events: the same subscription semantics over plain HTTP.

Every event carries ``id:``; the standard ``Last-Event-ID`` header (or ``?last_event_id=``)
resumes. Each stream has a bounded queue: a client that cannot keep up is disconnected
and resumes from the log, rather than holding memory on the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse

from pgevents import conf, policy
from pgevents.core.protocol import ProtocolError, channel_of, parse_filter, parse_last_event_id, parse_token
from pgevents.delivery import sessions
from pgevents.delivery.gate import FilteredSink
from pgevents.delivery.runtime import get_hub
from pgevents.delivery.subscription import Sink, Subscription
from pgevents.store.columns import Source, sources

QUEUE_LIMIT = 1000
KEEPALIVE = 15.0
_CLOSE = object()
SESSION_ENDED = '{"type":"error","code":"session_ended","message":"the session has ended; log in again"}'


class _QueueSink:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def _put(self, chunk: str) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.queue.put_nowait(_CLOSE)  # too slow: end the stream, the client resumes
        else:
            self.queue.put_nowait(chunk)

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        self._put((f"id: {id}\n" if id is not None else "") + f"data: {frame}\n\n")

    async def send_control(self, frame: str) -> None:
        self._put(f"event: control\ndata: {frame}\n\n")


async def _session_alive(session_key: str | None, user: object) -> bool:
    try:
        return await sessions.still_logged_in(session_key, user)
    except Exception:  # the database is down: keep serving, check again later
        return True


async def sse(request: HttpRequest, channel: str) -> HttpResponseBase:
    """``GET /pgevents/sse/<channel>/`` → ``text/event-stream``."""
    try:
        name = channel_of(channel)
        last = parse_last_event_id(request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"))
        try:
            raw = request.GET.get("filter")
            flt = parse_filter(None if raw is None else json.loads(raw))
        except ValueError:
            raise ProtocolError("bad_request", "filter must be JSON") from None
        token = parse_token(request.GET.get("token"))
    except ProtocolError as exc:
        return JsonResponse({"type": "error", "code": exc.code, "message": exc.message}, status=400)
    user = await request.auser()
    hub = get_hub()

    async def sources_of(name: str) -> list[Source]:
        found: list[Source] = await hub.reader.run(sources, name)
        return found

    decision = await policy.authorize(user, name, flt, token=token, sources=sources_of)
    if isinstance(decision, policy.Denial):
        status = {"unknown_channel": 404, "forbidden": 403, "unavailable": 503}.get(decision.code, 400)
        return JsonResponse({"type": "error", "code": decision.code, "message": decision.message}, status=status)

    sink = _QueueSink()
    gated: Sink = sink if decision.filter is None else FilteredSink(sink, decision.filter)
    sub = Subscription(name, gated, hub.reader, last_id=last)

    # A logged-in stream ends when its session does (logout, expiry), like a WebSocket.
    interval = conf.get().session_check_interval if user.is_authenticated else 0
    session_key = request.session.session_key

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        await hub.join(sub)
        loop = asyncio.get_running_loop()
        check_at = loop.time() + interval
        quiet_since = loop.time()
        try:
            while True:
                wait = KEEPALIVE if not interval else max(0.0, min(KEEPALIVE, check_at - loop.time()))
                try:
                    item = await asyncio.wait_for(sink.queue.get(), wait)
                except TimeoutError:
                    item = None
                if interval and loop.time() >= check_at:
                    check_at = loop.time() + interval
                    if not await _session_alive(session_key, user):
                        yield f"event: control\ndata: {SESSION_ENDED}\n\n"
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
            await hub.leave(sub)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
