"""URL patterns and a ready-made ASGI WebSocket application.

``websocket_urlpatterns`` for projects that compose their own stack; ``websocket_application()``
for the safe default: origin check (``ALLOWED_HOSTS``) and Django session authentication.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import re_path

from .consumers import EventConsumer

websocket_urlpatterns = [
    re_path(r"^ws/pgevents/$", EventConsumer.as_asgi()),
    re_path(r"^ws/pgevents/(?P<channel>[^/]+)/$", EventConsumer.as_asgi()),
]


def websocket_application(extra_patterns: list[Any] | None = None) -> Any:
    """pgevents' WebSocket routes (plus yours) behind the origin check and auth middleware."""
    return AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *(extra_patterns or [])]))
    )
