"""Who may subscribe to what. Deny by default.

A channel must first match ``PGEVENTS["CHANNELS"]``; then the ``AUTHORIZE`` hook decides
for this user. Hooks take ``(user, channel, filter)`` and return a bool; they may be sync
(run in a thread, so they can use the ORM) or async.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.utils.module_loading import import_string

from . import conf
from .names import matches


@dataclass(frozen=True)
class Denial:
    code: str
    message: str


def allow_all(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Every channel listed in CHANNELS, to everyone (the default)."""
    return True


def require_login(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Listed channels, to authenticated users only."""
    return bool(getattr(user, "is_authenticated", False))


def staff_only(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Listed channels, to active staff users only."""
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_staff)


async def check(user: Any, channel: str, filter: dict[str, Any] | None) -> Denial | None:
    """None when ``user`` may subscribe to ``channel``; otherwise why not."""
    settings = conf.get()
    if not matches(channel, settings.channels):
        return Denial("unknown_channel", "no such channel")
    hook = import_string(settings.authorize)
    if inspect.iscoroutinefunction(hook):
        allowed = await hook(user, channel, filter)
    elif hook in (allow_all,):
        allowed = True
    else:
        allowed = await sync_to_async(hook)(user, channel, filter)
    return None if allowed else Denial("forbidden", "not allowed to subscribe to this channel")
