"""Hooks the test settings (and the policy unit tests) point at."""

from __future__ import annotations

import asyncio
from typing import Any


def own_rows(user: Any, channel: str) -> dict[str, Any] | bool | None:
    """ROW_POLICY: on ``sec.owned`` a user sees only rows they own; other channels are open."""
    if channel != "sec.owned":
        return None
    if not user.is_authenticated:
        return False
    return {"owner_id": user.pk}


def broken(*args: Any) -> Any:
    """A hook with a bug: it must refuse, never reach the client as a stack trace."""
    raise RuntimeError("bug in a hook")


def bad_filter(user: Any, channel: str) -> dict[str, Any]:
    """A ROW_POLICY that returns something outside the filter grammar."""
    return {"owner_id": {"like": "%"}}


async def async_allow(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    return channel.endswith(".ok")


async def hangs(*args: Any) -> Any:
    """A hook that never answers (say, a query on a hung database)."""
    await asyncio.Event().wait()


class RequestLog:
    """Middleware (test settings): with ``PGEVENTS_TEST_REQUEST_LOG`` set, appends one line per
    request Django handles to that file: ``http <path>`` for requests from the network,
    ``shared <path>`` for a shared region's in-process render, ``fragment <path>`` for one
    URL of a coalesced ``fragments/`` request. Lets a browser test count
    what reached Django, server-side."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        import os

        where = os.environ.get("PGEVENTS_TEST_REQUEST_LOG")
        if where:
            kind = request.META.get("HTTP_X_PGEVENTS_RENDER") or "http"
            with open(where, "a", encoding="utf-8") as log:
                log.write(f"{kind} {request.get_full_path()}\n")
        return self.get_response(request)
