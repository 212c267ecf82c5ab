"""How long the polling listener waits before its next look at the log (docs/delivery.md, "Wake-ups").

Every look that finds events is a sequencer transaction: a commit, so a WAL flush that the
writers' own commits may queue behind, plus a round trip to PostgreSQL and one to the channel
layer. Under a stream that outruns the looks (a look finds more than one event), looking
again at once buys little latency and costs the whole pipeline CPU per event; waiting a
while after each look lets the batches grow with the rate instead. The pause follows what
the last look took, so it grows when the database is slow to answer (writers queue behind
the sequencer's commits) and vanishes for a lone event:

    pause = min(cap, factor * took * (events - 1) / events)

One event found: no pause (an isolated commit, or a stream the looks keep up with). Many:
close to ``factor * took``: the looks take about ``1 / (1 + factor)`` of the time instead of
all of it, and an event waits at most ``cap`` longer for its look.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The pause after a look that found many events, in units of the time that look took.
PACE = 0.5
#: The longest pause, in seconds: the most latency pacing adds to an event.
PACE_CAP = 0.001


@dataclass(frozen=True)
class Pacing:
    """The pause policy; ``factor`` 0 turns it off (the next look follows at once)."""

    factor: float = PACE
    cap: float = PACE_CAP

    def __post_init__(self) -> None:
        if self.factor < 0 or self.cap < 0:
            raise ValueError(f"pacing needs a factor and a cap of at least 0, got {self.factor!r} and {self.cap!r}")

    def pause(self, events: int, took: float) -> float:
        """Seconds to wait before the next look, after one that found ``events`` new events
        in ``took`` seconds."""
        if events <= 1 or not self.factor:
            return 0.0
        return min(self.cap, self.factor * max(took, 0.0) * (events - 1) / events)
