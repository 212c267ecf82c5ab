"""Is a connection's login still valid? Channels resolves the user once, at connect.

Read afresh from the session store with Django's own ``get_user``, so logout (the session is
deleted), expiry and a password change (the session hash no longer matches) all count.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async

from pgevents import conf


def _user_pk(session_key: str) -> Any:
    from django.conf import settings
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # get_user reads only ``request.session``: a stand-in request carrying the stored session.
    return get_user(SimpleNamespace(session=store)).pk  # type: ignore[arg-type]


async def request_user(request: Any) -> Any:
    """The request's user, from async code: ``request.auser()`` on Django 5.0+, and on 4.2
    the lazy ``request.user`` resolved in a thread (it reads the session and the database)."""
    auser = getattr(request, "auser", None)
    if auser is not None:
        return await auser()

    def resolve() -> Any:
        user = request.user
        user.is_authenticated  # noqa: B018  (forces the lazy object while in a thread)
        return user

    return await database_sync_to_async(resolve)()


async def still_logged_in(session_key: str | None, user: Any) -> bool:
    """Whether ``session_key`` still logs in ``user`` (False for a missing key). Raises
    ``TimeoutError`` when the session store does not answer within ``QUERY_TIMEOUT``."""
    if not session_key:
        return False
    async with asyncio.timeout(conf.get().query_timeout):  # not wait_for: it can swallow a cancellation
        pk = await database_sync_to_async(_user_pk)(session_key)
    return pk is not None and pk == user.pk
