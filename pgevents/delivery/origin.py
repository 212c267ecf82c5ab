"""The WebSocket Origin check used when ``PGEVENTS["ALLOWED_ORIGINS"]`` is not set.

A browser sends its cookies with a WebSocket handshake whatever page opened it, so the
``Origin`` is what tells this site's pages from any other. Comparing host names only (as
Channels' ``AllowedHostsOriginValidator`` does with ``ALLOWED_HOSTS``) accepts another
application on the same host, on another port or scheme. The default here is the rule
Django's CSRF protection applies to an unsafe request's ``Origin``: the origin must be the
handshake's own — scheme (``wss`` is ``https``, or ``SECURE_PROXY_SSL_HEADER`` says so
behind a TLS proxy), host (``request.get_host()``: ``ALLOWED_HOSTS``, ``USE_X_FORWARDED_HOST``)
and port — or one of ``CSRF_TRUSTED_ORIGINS``, which the project already trusts with its
users' unsafe requests. Anything else, a missing ``Origin`` included, gets HTTP 403.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class _Handshake(HttpRequest):
    """Just enough of a request for Django's ``get_host()`` and ``is_secure()``."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._secure = scope.get("scheme") in ("wss", "https")
        server = scope.get("server") or ("", 80)
        self.META = {"SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or "")}
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


def allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake's ``Origin`` is its own origin or a CSRF-trusted one."""
    request = _Handshake(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin or "," in origin:
        return False
    try:
        own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        own = None
    if origin == own:
        return True
    trusted = list(getattr(settings, "CSRF_TRUSTED_ORIGINS", ()))
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, entry.split("://", 1)[1].replace("*", ""))
        for entry in trusted
        if "*" in entry and entry.split("://", 1)[0] == parsed.scheme
    )


class SameOriginValidator(OriginValidator):
    """Refuses (HTTP 403) a handshake whose ``Origin`` fails :func:`allowed`."""

    def __init__(self, application: Any) -> None:
        super().__init__(application, [])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket" and not allowed(scope):
            logger.info("refused a WebSocket from origin %.100r", dict(scope.get("headers", [])).get(b"origin"))
            return await WebsocketDenier()(scope, receive, send)
        inner: Any = self.application  # an ASGI 3 application (channels' stubs also allow ASGI 2's)
        return await inner(scope, receive, send)
