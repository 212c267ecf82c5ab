"""Every client's streams against the truth, and how long each gap took to close.

Pure code over plain data, so it is tested on hand-made streams (tests/unit/test_chaos.py).

Per stream (one client, one channel), a change is *owed* when its transaction's COMMIT was
sent after the client read its first ``subscribed`` on the channel (for clients subscribed
before the writer started: every change). A change committed earlier may arrive or not
(it does when it was positioned after the client's starting point); when it does, it is
held to the same rules. Then:

- **expected**: owed changes, plus earlier ones that did arrive;
- **lost**: owed changes never received;
- **duplicated**: extra copies of a change already received;
- **out of order**: a change received after one with a higher id on the channel, or after
  a later revision of the same row;
- **corrupt**: an event whose row is not intact, or a change the tables do not hold.

**Gap-closing time** of a fault: a change is *late* at a client when it arrived more than
``LATE`` seconds after its commit. The gap a fault opened is closed when the last late
change committed in the fault's window (from ``LATE`` before it to ``LATE`` before the
next fault) has arrived, at the slowest client; 0 when nothing was late. A late change is
not blamed on a server fault when its client was away on purpose while it was on its way:
deliberate drops are measured on their own, from the client's reconnect until it held
every change committed before it (**resume** time).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from .schema import Change, Received

INF = float("inf")
#: A change that reaches a client later than this after its commit is *late*: normal
#: delivery on a loaded 2-core machine stays well under it (see the delay figures).
LATE = 0.5


@dataclass
class Tally:
    streams: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    corrupt: int = 0

    def __iadd__(self, other: Tally) -> Tally:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def clean(self) -> bool:
        return self.lost == self.duplicated == self.out_of_order == self.corrupt == 0 and self.received > 0


def owed_to(start: float | None, changes: set[Change], sent_at: dict[Change, float]) -> set[tuple[str, int]]:
    """The (key, revision) pairs of ``changes`` (one channel's) owed to a stream that read its
    first ``subscribed`` at ``start`` (None: never subscribed, owed nothing). A change with no
    COMMIT time (the fence, written after every client started) is owed."""
    if start is None:
        return set()
    return {(k, rev) for c in changes if sent_at.get(c, INF) > start for _, k, rev in [c]}


def judge(got: list[Received], owed: set[tuple[str, int]], optional: set[tuple[str, int]] | None = None) -> Tally:
    """One stream: ``got`` in arrival order; ``owed`` the (key, revision) pairs it must get;
    ``optional`` those committed before it started (welcome, once and in order, or absent)."""
    optional = optional or set()
    seen: set[tuple[str, int]] = set()
    top_id = -1
    top_rev: dict[str, int] = {}
    t = Tally(streams=1, received=len(got))
    for id_, k, rev, intact, _ in got:
        if (k, rev) in seen:
            t.duplicated += 1
            continue
        seen.add((k, rev))
        if not intact or ((k, rev) not in owed and (k, rev) not in optional):
            t.corrupt += 1
        if id_ <= top_id or rev < top_rev.get(k, -1):
            t.out_of_order += 1
        top_id = max(top_id, id_)
        top_rev[k] = max(top_rev.get(k, -1), rev)
    t.lost = len(owed - seen)
    t.expected = len(owed) + len(optional & seen)
    return t


class Timed:
    """One stream's owed changes in commit order: when each was committed and when it first
    arrived (inf: never)."""

    def __init__(self, got: list[Received], owed: list[tuple[float, tuple[str, int]]]) -> None:
        first: dict[tuple[str, int], float] = {}
        for _, k, rev, _, at in got:
            first.setdefault((k, rev), at)
        self.commits = [t for t, _ in owed]
        self.arrivals = [first.get(change, INF) for _, change in owed]
        #: held[i]: when changes 0..i had all arrived.
        self.held: list[float] = []
        latest = -INF
        for arrival in self.arrivals:
            latest = max(latest, arrival)
            self.held.append(latest)

    def held_all(self, committed_by: float) -> float:
        """When the stream held every change committed by ``committed_by`` (-inf: none owed)."""
        i = bisect.bisect_right(self.commits, committed_by)
        return self.held[i - 1] if i else -INF

    def window(self, start: float, end: float) -> range:
        return range(bisect.bisect_left(self.commits, start), bisect.bisect_left(self.commits, end))


@dataclass
class ClientView:
    kind: str
    streams: list[Timed]
    away: list[tuple[float, float]]

    def away_between(self, start: float, end: float) -> bool:
        return any(a < end and b > start for a, b in self.away)

    def delays(self) -> list[float]:
        return [a - c for s in self.streams for c, a in zip(s.commits, s.arrivals, strict=True) if a != INF]


@dataclass
class Closing:
    """A gap's closing time per client kind, and the longest delay of a change in it."""

    by_kind: dict[str, float] = field(default_factory=dict)
    worst_delay: float = 0.0

    @property
    def overall(self) -> float:
        return max(self.by_kind.values(), default=0.0)


def closing(clients: Iterable[ClientView], began: float, until: float) -> Closing:
    """Seconds from ``began`` until the last *late* change (one that arrived more than
    ``LATE`` after its commit) committed from ``LATE`` before the fault to ``LATE`` before
    ``until`` (the next fault, whose window starts there) reached the client; 0 when none was late, inf when one never arrived. A
    change that did arrive is not blamed on the fault when its own client was away on
    purpose while it was on its way."""
    result = Closing()
    for c in clients:
        last = began
        for s in c.streams:
            for i in s.window(began - LATE, until - LATE):
                commit, arrival = s.commits[i], s.arrivals[i]
                if arrival != INF and c.away_between(commit, arrival):
                    continue
                result.worst_delay = max(result.worst_delay, arrival - commit)
                if arrival - commit > LATE:
                    last = max(last, arrival)
        result.by_kind[c.kind] = max(result.by_kind.get(c.kind, 0.0), last - began)
    return result


def resumes(client: ClientView) -> list[float]:
    """Seconds from each deliberate reconnect until the client held everything committed
    before it (inf: never)."""
    return [max(0.0, max((s.held_all(back) for s in client.streams), default=-INF) - back) for _, back in client.away]


def in_commit_order(
    channel: str, pairs: set[tuple[str, int]], time_of: dict[Change, float]
) -> list[tuple[float, tuple[str, int]]]:
    """The (key, revision) ``pairs`` of ``channel`` that have a known commit time, in that order."""
    return sorted((time_of[(channel, k, r)], (k, r)) for k, r in pairs if (channel, k, r) in time_of)


def summary(values: list[float]) -> dict[str, float] | None:
    """Median, 95th and 99th percentiles and maximum (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"median": statistics.median(ordered), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}
