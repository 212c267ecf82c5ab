"""Rendering shared regions inside the server process: the project's own views, once per event.

A shared region's HTML is the same for every viewer, so the process that delivers an event
renders it once and sends the HTML with the event to every tab showing that region, instead
of every tab asking Django for it. The renderer is the project itself: the region's URL goes
through ``ROOT_URLCONF`` and the project's middleware like a request would, as an anonymous
visitor with no cookies (what is rendered for everyone must not depend on who asks), through
an in-process handler, not the network.

``RenderCache`` keys each render by (URL, event id): however many subscriptions of this
process show the region, one render per change; concurrent askers await the same task. A
render that does not answer 200 (a view that needs a login redirects, a bug answers 500) is
reported as such, and the client falls back to fetching the region itself.

A failure is an answer for a moment only: a view that raised once, or a database blip, must
not make that (URL, event) unrenderable for good (replays and resets ask again). It is kept
``RETRY_AFTER`` seconds, so the wave of subscribers a change reaches shares the one failed
attempt instead of each retrying a view that is down, then forgotten: the next asker renders
again. A 404 or 410 is not a failure (the row is gone) and is kept like any answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, NamedTuple, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.http import HttpResponse
from django.urls import get_script_prefix, set_script_prefix

from pgevents import metrics

logger = logging.getLogger(__name__)

#: Renders remembered per process (oldest dropped first): enough for the events in flight.
CACHE_SIZE = 1024
#: Seconds a failed render is remembered (shared by everyone asking meanwhile) before the
#: next asker tries again.
RETRY_AFTER = 1.0
#: Statuses that are answers: the HTML (200), or the row is gone (404, 410).
ANSWERS = (200, 404, 410)
#: The header a shared render carries, so a view (or a request log) can tell it apart.
HEADER = "HTTP_X_PGEVENTS_RENDER"


@dataclass(frozen=True)
class RegionSpec:
    """What the server renders for a shared region (``{% pgevents_region … shared=True %}``).

    ``row`` is a URL with ``{key}`` rendering one row (the event's ``key`` field fills it);
    ``src`` a URL rendering the region's inner HTML (reloads, bursts, resets). ``id`` names
    the region in the frames that carry its HTML; it is derived from the rest, so two pages
    showing the same region share its renders. ``name`` is the SSE event name of an HTML
    stream (``{% pgevents_htmx %}``), which htmx's ``sse-swap`` matches. ``prefix`` is the
    script prefix the URLs were reversed under (``SCRIPT_NAME``, ``FORCE_SCRIPT_NAME``, an
    ASGI ``root_path``): the part of them the render gives as ``SCRIPT_NAME``, not as a path
    of the URLconf, as the server in front of the project would.
    """

    channel: str
    row: str | None
    key: str
    src: str | None
    name: str | None = None
    prefix: str = "/"

    @property
    def id(self) -> str:
        parts = [self.channel, self.row, self.key, self.src, self.name]
        if self.prefix != "/":
            parts.append(self.prefix)
        digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        return f"r{digest[:12]}"


class Rendered(NamedTuple):
    status: int
    html: str


_handler: BaseHandler | None = None


def _get_handler() -> BaseHandler:
    global _handler
    if _handler is None:
        handler = BaseHandler()
        handler.load_middleware(is_async=False)
        _handler = handler
    return _handler


def host() -> str:
    """A host name ``ALLOWED_HOSTS`` admits, for the ``Host`` of in-process renders."""
    for entry in settings.ALLOWED_HOSTS:
        if entry == "*":
            break
        name = entry.lstrip(".")
        if name and "*" not in name:
            return name
    return "localhost"


#: What a sub-request keeps of the request it is made for (``fragments``): who and where.
_KEPT = (
    "HTTP_COOKIE",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_USER_AGENT",
)


def split(path: str, prefix: str) -> tuple[str, str]:
    """``(SCRIPT_NAME, PATH_INFO)`` of ``path`` (a URL as the project reversed it, under
    script prefix ``prefix``); a path outside the prefix is taken as it is."""
    script = prefix.rstrip("/")
    if script and (path == script or path.startswith(script + "/")):
        return script, path[len(script) :] or "/"
    return "", path


def render_path(path: str, base: dict[str, Any] | None = None, kind: str = "shared", prefix: str = "/") -> Rendered:
    """GET ``path`` through the project's URLconf and middleware, in this thread.

    Without ``base`` the request is anonymous (no cookies): a shared region's render. With
    ``base`` (another request's ``META``) it carries that request's cookies and host: a
    per-user fragment, as that user's browser would have fetched it. ``prefix``: the script
    prefix ``path`` includes (a project mounted under ``/app/``); the render runs under it,
    so the view's own ``reverse()`` and ``request.path`` are what a request would have seen.
    """
    full, _, query = path.partition("?")
    script_name, path_info = split(full, prefix)
    environ: dict[str, Any] = {
        "SERVER_NAME": host(),
        "SERVER_PORT": "80",
        "HTTP_HOST": host(),
        "REMOTE_ADDR": "127.0.0.1",
    }
    environ.update({k: v for k, v in (base or {}).items() if k in _KEPT and isinstance(v, str)})
    environ.update(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "SCRIPT_NAME": script_name,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_X_REQUESTED_WITH": "pgevents",
            HEADER: kind,
            "wsgi.input": BytesIO(b""),
            "wsgi.url_scheme": (base or {}).get("wsgi.url_scheme", "http"),
            "wsgi.errors": BytesIO(),
        }
    )
    before = get_script_prefix()
    set_script_prefix(get_script_name(environ))  # as Django's own WSGI handler does
    try:
        response = _get_handler().get_response(WSGIRequest(environ))
    finally:
        set_script_prefix(before)
    try:
        if not isinstance(response, HttpResponse):  # streamed or a file: not a fragment
            return Rendered(response.status_code, "")
        return Rendered(response.status_code, response.content.decode(response.charset or "utf-8"))
    finally:
        if base is None or not isinstance(response, HttpResponse):
            # A render of its own ends as a request does (request_finished: the thread's
            # database connections are closed or recycled as after any request). A fragment
            # is part of the asking request: that request's end does it, once, and until then
            # its connection stays open for the next fragment (and its transaction, with
            # ATOMIC_REQUESTS, is not cut). A stream or a file is closed in any case.
            response.close()


async def render(path: str, prefix: str = "/") -> Rendered:
    """``render_path`` off the event loop, on a pool thread.

    ``thread_sensitive=False``: Django runs sync views of an ASGI process on one shared thread
    (``thread_sensitive=True``); a render there would queue behind every sync view and
    database call of the process, and they behind it. A pool thread neither blocks the event
    loop (other clients keep getting their frames) nor waits for requests. The render is
    self-contained (its own request, its own database connection, closed at the end), so no
    thread affinity is needed.
    """
    try:
        rendered = await sync_to_async(render_path, thread_sensitive=False)(path, prefix=prefix)
    except Exception:
        logger.exception(
            "rendering %s for a shared region failed: not sent, the tabs fetch it themselves; "
            "tried again for the next event, or after %s s",
            path,
            RETRY_AFTER,
        )
        return Rendered(500, "")
    if rendered.status not in ANSWERS:
        logger.warning(
            "rendering %s for a shared region answered %d, not 200: not sent, the tabs fetch it themselves "
            "(a shared region's views must answer an anonymous GET; a redirect is usually a login)",
            path,
            rendered.status,
        )
    return rendered


_Key = tuple[str, Hashable, str]  # (path, version, prefix)
_T = TypeVar("_T")


class RenderCache:
    """One render per (URL, version) per process; the version is the event id it is for.

    Failed renders (anything but ``ANSWERS``) are forgotten ``retry_after`` seconds after
    they failed (module docstring).
    """

    def __init__(
        self, size: int = CACHE_SIZE, retry_after: float = RETRY_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.retry_after = retry_after
        self.clock = clock
        self._tasks: OrderedDict[_Key, asyncio.Future[Rendered]] = OrderedDict()
        #: When a render of ``_tasks`` failed, by key.
        self._failed: dict[_Key, float] = {}
        #: Renders started by this process (each distinct (URL, version) once, failures again).
        self.renders = 0
        self._composed: OrderedDict[Hashable, asyncio.Future[Any]] = OrderedDict()

    def get(self, path: str, version: Hashable, prefix: str = "/") -> asyncio.Future[Rendered]:
        """The render of ``path`` (a URL under script prefix ``prefix``) for ``version``."""
        key = (path, version, prefix)
        task = self._tasks.get(key)
        failed = self._failed.get(key)
        if task is None or (failed is not None and self.clock() - failed >= self.retry_after):
            self._failed.pop(key, None)
            self.renders += 1
            metrics.SHARED_RENDERS.inc()
            task = asyncio.ensure_future(self._render(key))
            self._tasks[key] = task
            self._tasks.move_to_end(key)
            while len(self._tasks) > self.size:
                dropped, _ = self._tasks.popitem(last=False)
                self._failed.pop(dropped, None)
        return task

    async def _render(self, key: _Key) -> Rendered:
        rendered = await render(key[0], key[2])
        if rendered.status not in ANSWERS and key in self._tasks:
            self._failed[key] = self.clock()
        return rendered

    def compose(self, key: Hashable, make: Callable[[], Awaitable[tuple[_T, bool]]]) -> asyncio.Future[_T]:
        """What ``make`` builds from renders (``shared.SharedSink``: a run's frames with their
        HTML), once per ``key`` for every subscriber of the process. ``make`` answers the value
        and whether every render in it answered; a value built on a failed render is
        forgotten after ``retry_after``, as the failure itself is."""
        task = self._composed.get(key)
        if task is None:
            task = asyncio.ensure_future(self._composing(key, make))
            self._composed[key] = task
            while len(self._composed) > self.size:
                self._composed.popitem(last=False)
        return task

    async def _composing(self, key: Hashable, make: Callable[[], Awaitable[tuple[_T, bool]]]) -> _T:
        value, complete = await make()
        if not complete:
            asyncio.get_running_loop().call_later(self.retry_after, self._composed.pop, key, None)
        return value
