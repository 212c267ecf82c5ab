"""URL patterns and ready-made ASGI applications.

``websocket_urlpatterns`` for projects that compose their own stack; ``websocket_application()``
for the safe default: the origin check and Django session authentication (the answer of
Channels' ``AuthMiddlewareStack``, see ``pgevents.delivery.auth``). A handshake from
another origin, or without an ``Origin`` header, is refused with HTTP 403 before any
application code runs: with ``PGEVENTS["ALLOWED_ORIGINS"]`` the origin must be listed,
otherwise it must be the handshake's own (scheme, host and port) or one of
``CSRF_TRUSTED_ORIGINS`` (see ``pgevents.delivery.origin``). A WebSocket path no route
matches is refused the same way, quietly (no server error, no traceback).

``http_application(django_asgi)`` wraps the HTTP side so that SSE streams can see the
server's write buffer (daphne's ``send`` never waits; without it a stalled SSE reader is
bounded only by the server).
"""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.urls import re_path

from pgevents import conf
from pgevents.delivery.auth import SessionAuthMiddleware
from pgevents.delivery.consumers import EventConsumer
from pgevents.delivery.origin import SameOriginValidator
from pgevents.delivery.transport import SERVER_SEND

# Channels' URLRouter takes ASGI applications in Django's URL patterns; Django's stubs expect views.
websocket_urlpatterns = [
    re_path(r"^ws/pgevents/$", EventConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(r"^ws/pgevents/(?P<channel>[^/]+)/$", EventConsumer.as_asgi()),  # type: ignore[arg-type]
]


class ServerSendMiddleware:
    """Keeps the server's own ``send`` in the scope (``"pgevents.server_send"``).

    Middleware (sessions, Django's handler) wraps ``send``; outermost, this sees the
    server's, through which ``pgevents.delivery.transport`` finds the socket's write buffer
    to bound what a slow client holds. Put it outermost when composing your own stack.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await self.app({**scope, SERVER_SEND: send}, receive, send)


def websocket_application(extra_patterns: list[Any] | None = None) -> Any:
    """pgevents' WebSocket routes (plus yours) behind the origin check and auth middleware."""
    # last: any path nothing else matched (an ASGI application in a URL pattern, as above)
    refuse = re_path(r"", WebsocketDenier.as_asgi())  # type: ignore[arg-type]
    routes = [*websocket_urlpatterns, *(extra_patterns or []), refuse]
    inner = SessionAuthMiddleware(URLRouter(routes))  # AuthMiddlewareStack's answer, cheaper
    origins = conf.get().allowed_origins
    checked = SameOriginValidator(inner) if origins is None else OriginValidator(inner, list(origins))
    return ServerSendMiddleware(checked)


def http_application(app: Any) -> Any:
    """Your HTTP application (``get_asgi_application()``), with what SSE needs to bound
    clients that stop reading."""
    return ServerSendMiddleware(app)
