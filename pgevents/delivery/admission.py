"""One road from a subscription request to a running subscription, for every face.

The WebSocket consumer (a ``subscribe`` message, or the single-channel URL's query string)
and the SSE view (path, query string, ``Last-Event-ID``) parse with ``core.protocol`` and
then come here: the policy decides (``policy.authorize``, with the channel's columns read on
the process' shared connection, under its timeout), and a granted request becomes a
:class:`Subscription` whose sink applies the granted row filter. Keeping this in one place
is what keeps the two faces' semantics the same.

Shared regions (``regions``: signed by the template tags, ``pgevents.signing.sign_region``)
are checked here too: a token that is not valid for the channel refuses the subscription
(``bad_request``), and valid ones wrap the sink in a ``SharedSink`` that sends their HTML
with the events. The channel's policy still decides who gets the channel at all.
"""

from __future__ import annotations

from typing import Any

from pgevents import policy, signing
from pgevents.core.protocol import Subscribe
from pgevents.delivery.gate import FilteredSink
from pgevents.delivery.render import RegionSpec, RenderCache
from pgevents.delivery.shared import SharedSink
from pgevents.delivery.subscription import Sink, Subscription
from pgevents.store.columns import Source, sources
from pgevents.store.log import LogReader


async def decide(user: Any, command: Subscribe, reader: LogReader) -> policy.Access | policy.Denial:
    """The policy's answer to ``command`` from ``user``."""

    async def sources_of(name: str) -> list[Source]:
        found: list[Source] = await reader.run(sources, name)
        return found

    decision = await policy.authorize(user, command.channel, command.filter, token=command.token, sources=sources_of)
    if isinstance(decision, policy.Access):
        try:
            regions(command)
        except signing.BadToken as exc:
            return policy.Denial("bad_request", f"shared region: {exc}")
    return decision


def regions(command: Subscribe) -> list[RegionSpec]:
    """The shared regions ``command`` names; ``BadToken`` when one is not valid for its channel."""
    return [signing.verify_region(token, command.channel) for token in command.regions]


def subscription(
    command: Subscribe, access: policy.Access, sink: Sink, reader: LogReader, renders: RenderCache | None = None
) -> Subscription:
    """A subscription for a granted ``command``, delivering through ``sink`` (with its shared
    regions' HTML, rendered through ``renders``; behind the granted row filter, if any), from
    ``command.last_event_id`` on."""
    specs = regions(command)
    if specs:
        sink = SharedSink(sink, specs, renders if renders is not None else RenderCache())
    gated: Sink = sink if access.filter is None else FilteredSink(sink, access.filter, command.channel)
    return Subscription(command.channel, gated, reader, last_id=command.last_event_id)
