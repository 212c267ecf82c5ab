"""URL patterns and a ready-made ASGI WebSocket application.

``websocket_urlpatterns`` for projects that compose their own stack; ``websocket_application()``
for the safe default: origin check (``PGEVENTS["ALLOWED_ORIGINS"]``, else ``ALLOWED_HOSTS``)
and Django session authentication. A handshake from another site, or without an ``Origin``
header, is refused with HTTP 403 before any application code runs.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.urls import re_path

from pgevents import conf
from pgevents.delivery.consumers import EventConsumer

# Channels' URLRouter takes ASGI applications in Django's URL patterns; Django's stubs expect views.
websocket_urlpatterns = [
    re_path(r"^ws/pgevents/$", EventConsumer.as_asgi()),  # type: ignore[arg-type]
    re_path(r"^ws/pgevents/(?P<channel>[^/]+)/$", EventConsumer.as_asgi()),  # type: ignore[arg-type]
]


class ServerSendMiddleware:
    """Keeps the server's own ``send`` in the scope (``"pgevents.server_send"``).

    Session middleware wraps ``send``; outermost, this sees daphne's, through which
    ``pgevents.delivery.flow`` finds the socket's write buffer to bound what a slow client holds.
    Put it outermost when composing your own stack from ``websocket_urlpatterns``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await self.app({**scope, "pgevents.server_send": send}, receive, send)


def websocket_application(extra_patterns: list[Any] | None = None) -> Any:
    """pgevents' WebSocket routes (plus yours) behind the origin check and auth middleware."""
    inner = AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *(extra_patterns or [])]))  # type: ignore[list-item]
    origins = conf.get().allowed_origins
    checked = AllowedHostsOriginValidator(inner) if origins is None else OriginValidator(inner, list(origins))
    return ServerSendMiddleware(checked)
