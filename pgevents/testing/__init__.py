"""Test helpers for projects that use pgevents, with pytest-django or Django's ``TestCase``.

``capture`` collects the events a block of code makes the triggers log, read from the event
log on Django's own connection: no listener, no channel layer, no Redis, and it works inside
``TestCase``'s transaction (nothing needs to commit)::

    from pgevents.testing import capture

    def test_new_order_is_published(db):
        with capture("orders") as events:
            Order.objects.create(customer="Ada", total=10)
        assert [(e["op"], e["row"]["customer"]) for e in events] == [("INSERT", "Ada")]

``assert_region_updates`` answers "would this page follow that change?" the way
``pgevents.js`` would: it finds the page's regions for the event's channel and fetches what
the browser would fetch (the row view, or the region's source) with your test client::

    page = client.get("/orders/")
    with capture("orders") as events:
        Order.objects.create(customer="Ada", total=10)
    (update,) = assert_region_updates(page, events[0], client)
    assert "Ada" in update.html

Events are the contract's envelopes (``type``, ``channel``, ``op``, ``schema``, ``table``,
``row``, ``old``, ``at``) with ``id: null``: ids are given by the listener, which does not run.
Only durable watches (the default) log events; capturing a channel no durable watch feeds
raises, rather than passing a test that asserts nothing arrived.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from pgevents import conf
from pgevents.store import log
from pgevents.testing.regions import RegionUpdate, assert_region_updates

__all__ = ["RegionUpdate", "assert_region_updates", "capture"]


@contextmanager
def capture(*channels: str, using: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """The events logged on ``channels`` (every channel when none is named) inside the block.

    The list is filled when the block ends, in the order the changes were made.
    """
    alias = using or conf.get().database
    wanted = list(channels) or None
    with connections[alias].cursor() as cursor:
        if wanted:
            _check_durable(cursor, wanted)
        start = log.sequence_position(cursor)
    events: list[dict[str, Any]] = []
    yield events
    with connections[alias].cursor() as cursor:
        events.extend(json.loads(frame) for frame in log.logged_since(cursor, start, wanted))


def _check_durable(cursor: Any, channels: list[str]) -> None:
    """Every channel must be fed by a durable watch, or the capture would silently see nothing."""
    from pgevents.setup.installation import installed

    durable: dict[str, list[bool]] = {}
    for found in installed(cursor):
        flag = bool(found.config.get("durable", True))
        durable.setdefault(found.channel, []).append(flag)
        for ref in found.config.get("referencing") or []:
            durable.setdefault(str(ref.get("channel")), []).append(flag)
    for channel in channels:
        flags = durable.get(channel)
        if not flags:
            known = ", ".join(sorted(durable)) or "none"
            raise LookupError(
                f"capture({channel!r}): no watch publishes on channel {channel!r} in this database "
                f"(watched channels: {known}). Is the migration with its Watch applied?"
            )
        if not any(flags):
            raise ValueError(
                f"capture({channel!r}): the watches of channel {channel!r} are not durable, so their events "
                "never reach the event log capture() reads. Test them with a running listener instead."
            )
