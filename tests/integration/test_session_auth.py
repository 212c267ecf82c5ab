"""The connection's user: SessionAuthMiddleware answers as Channels' AuthMiddlewareStack does,
for every kind of handshake, against the real session store and user table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack

from pgevents.delivery import auth


class Recorder:
    """An ASGI application that keeps the scope it was called with."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope


def _session(user: Any, auth_hash: str | None = None) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash() if auth_hash is None else auth_hash
    store.create()
    assert store.session_key is not None
    return store.session_key


@pytest.fixture(scope="module")
def cookies(db_url: str, django_db_blocker: Any) -> Iterator[dict[str, list[tuple[bytes, bytes]]]]:
    """Handshake headers by case, over real sessions of real users."""
    from django.contrib.auth.models import User

    with django_db_blocker.unblock():
        User.objects.filter(username__startswith="sa-").delete()
        user = User.objects.create_user("sa-user", password="x")
        inactive = User.objects.create_user("sa-inactive", password="x", is_active=False)
        valid, stale, off = _session(user), _session(user, auth_hash="not-the-hash"), _session(inactive)
        yield {
            "no cookie": [],
            "other cookies": [(b"cookie", b"csrftoken=abc; theme=dark")],
            "empty session cookie": [(b"cookie", b"sessionid=")],
            "unknown session": [(b"cookie", b"sessionid=abcdefghijklmnopqrstuvwxyz012345")],
            "malformed session": [(b"cookie", b"sessionid=%00;;")],
            "logged in": [(b"cookie", f"theme=dark; sessionid={valid}".encode())],
            "password changed": [(b"cookie", f"sessionid={stale}".encode())],
            "inactive user": [(b"cookie", f"sessionid={off}".encode())],
            "first cookie header counts": [(b"cookie", b"theme=x"), (b"cookie", f"sessionid={valid}".encode())],
        }
        User.objects.filter(username__startswith="sa-").delete()


def _who(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[bool, Any, str | None, dict[str, str]]:
    recorder = Recorder()

    async def call() -> None:
        scope = {"type": "websocket", "path": "/ws/pgevents/", "headers": headers}
        await app(recorder)(scope, None, None)

    asyncio.run(call())
    scope = recorder.scope
    user = scope["user"]
    return user.is_authenticated, getattr(user, "pk", None), scope["session"].session_key, dict(scope["cookies"])


CASES = [
    ("no cookie", False),
    ("other cookies", False),
    ("empty session cookie", False),
    ("unknown session", False),
    ("malformed session", False),
    ("logged in", True),
    ("password changed", False),
    ("inactive user", False),
    ("first cookie header counts", False),
]


@pytest.mark.parametrize(("case", "authenticated"), CASES)
def test_the_user_is_the_one_channels_auth_stack_resolves(
    cookies: dict[str, list[tuple[bytes, bytes]]], case: str, authenticated: bool, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock():
        ours = _who(auth.SessionAuthMiddleware, cookies[case])
        theirs = _who(AuthMiddlewareStack, cookies[case])
    assert ours[0] is authenticated
    assert ours[:2] == theirs[:2]  # authenticated, and the same user
    assert ours[3] == theirs[3]  # the same cookies in the scope


def test_the_scope_carries_a_usable_session(
    cookies: dict[str, list[tuple[bytes, bytes]]], django_db_blocker: Any
) -> None:
    from django.contrib.auth import SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    with django_db_blocker.unblock():
        authenticated, pk, key, _ = _who(auth.SessionAuthMiddleware, cookies["logged in"])
        assert authenticated and key is not None
        assert SessionStore(key)[SESSION_KEY] == str(pk)
        assert _who(auth.SessionAuthMiddleware, cookies["no cookie"])[2] is None
