"""Who is connecting: the handshake's session cookie, session and user, in one step.

The same answer as Channels' ``AuthMiddlewareStack`` (cookies, then the session, then
``channels.auth.get_user``, which checks the session's auth hash), at a lower price per
connection. Channels' stack is three middleware, each holding a copy of the scope for the
life of the connection, and it resolves every user in a database thread, one connection after
another through Django's single sync thread, even for a handshake that carries no session
cookie at all. Here:

- no session cookie (or an empty one): the user is ``AnonymousUser`` at once. A session
  without a key holds no data, so ``get_user`` could only answer that;
- a session cookie: ``channels.auth.get_user`` in a thread, exactly as Channels does (an
  unknown or expired key, a changed password, a user no backend knows: anonymous).

The scope gets ``cookies``, ``session`` (a session store, for consumers that read or save
it) and ``user``. WebSocket messages never carry cookies back, so unlike Channels' session
middleware nothing wraps ``send``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie


def cookies(scope: dict[str, Any]) -> dict[str, str]:
    """The handshake's cookies, parsed as Django parses a request's."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


class SessionAuthMiddleware:
    """``scope["user"]`` from the Django session, as ``AuthMiddlewareStack`` (see module)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        jar = cookies(scope)
        key = jar.get(settings.SESSION_COOKIE_NAME) or None
        session = import_module(settings.SESSION_ENGINE).SessionStore(key)
        scope = {**scope, "cookies": jar, "session": session}
        scope["user"] = AnonymousUser() if key is None else await get_user(scope)  # type: ignore[arg-type]
        return await self.inner(scope, receive, send)
