"""One road from a subscription request to a running subscription, for every face.

The WebSocket consumer (a ``subscribe`` message, or the single-channel URL's query string)
and the SSE view (path, query string, ``Last-Event-ID``) parse with ``core.protocol`` and
then come here: the policy decides (``policy.authorize``, with the channel's columns read on
the process' shared connection, under its timeout), and a granted request becomes a
:class:`Subscription` whose sink applies the granted row filter. Keeping this in one place
is what keeps the two faces' semantics the same.
"""

from __future__ import annotations

from typing import Any

from pgevents import policy
from pgevents.core.protocol import Subscribe
from pgevents.delivery.gate import FilteredSink
from pgevents.delivery.subscription import Sink, Subscription
from pgevents.store.columns import Source, sources
from pgevents.store.log import LogReader


async def decide(user: Any, command: Subscribe, reader: LogReader) -> policy.Access | policy.Denial:
    """The policy's answer to ``command`` from ``user``."""

    async def sources_of(name: str) -> list[Source]:
        found: list[Source] = await reader.run(sources, name)
        return found

    return await policy.authorize(user, command.channel, command.filter, token=command.token, sources=sources_of)


def subscription(command: Subscribe, access: policy.Access, sink: Sink, reader: LogReader) -> Subscription:
    """A subscription for a granted ``command``, delivering through ``sink`` (behind the
    granted row filter, if any), from ``command.last_event_id`` on."""
    gated: Sink = sink if access.filter is None else FilteredSink(sink, access.filter, command.channel)
    return Subscription(command.channel, gated, reader, last_id=command.last_event_id)
