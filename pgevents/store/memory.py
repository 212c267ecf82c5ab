"""An in-memory event log with the semantics of the one in PostgreSQL, for fast tests.

``MemoryLog`` does what the trigger, the sequencer and the pruning do to ``pgevents_event``
(append, position in commit order, prune) and answers what server processes read from it
(``read_after``, ``head``: it is a ``pgevents.store.log.LogReader``). The same contract tests
run against both (``tests/integration/test_log_contract.py``), so a subscription, a hub or a
consumer tested over it behaves as it would over the real log. Nothing here touches a
database or a network; it is meant for tests, ours and a project's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pgevents.core.envelope import Event, dumps, layer_message
from pgevents.store.log import LoggedEvent, Replay


@dataclass
class _Row:
    seq: int
    channel: str
    fields: dict[str, Any]
    at: float
    id: int | None = None
    prev: int | None = None


@dataclass
class MemoryLog:
    """``pgevents_event`` and ``pgevents_cursor`` in a list and a dict."""

    rows: list[_Row] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=lambda: {"assigned": 0, "published": 0, "pruned": 0})
    appended: int = 0

    # -- what writers and the listener do --------------------------------------------------
    def append(
        self,
        channel: str,
        *,
        op: str | None = "INSERT",
        row: dict[str, Any] | None = None,
        old: dict[str, Any] | None = None,
        schema: str | None = "public",
        table: str | None = None,
    ) -> int:
        """A committed, not yet positioned event (what the trigger inserts); returns its ``seq``."""
        self.appended += 1
        fields = {"op": op, "schema": schema, "table": table, "row": row, "old": old}
        self.rows.append(_Row(self.appended, channel, fields, time.time()))
        return self.appended

    def assign(self, batch: int = 500, published: int = 0) -> list[LoggedEvent]:
        """Position pending events in order, as ``pgevents_assign`` does, and return them."""
        self.cursors["published"] = max(self.cursors["published"], published)
        out = []
        for row in [r for r in self.rows if r.id is None][:batch]:
            row.id = self.cursors["assigned"] = self.cursors["assigned"] + 1
            row.prev = self._newest(row.channel, below=row.id)
            out.append(self._logged(row))
        return out

    def commit(self, channel: str, **fields: Any) -> Event:
        """Append one event, position it and mark it published: the layer message a listener
        would send for it."""
        self.append(channel, **fields)
        (logged,) = self.assign(published=self.cursors["assigned"] + 1)
        return layer_message(logged.channel, logged.frame, logged.id, logged.prev)

    def prune(self, retention: float) -> int:
        """Delete published events older than ``retention`` seconds (like ``log.prune``)."""
        cutoff = time.time() - retention
        gone = [r for r in self.rows if r.id is not None and r.id <= self.cursors["published"] and r.at < cutoff]
        if gone:
            self.cursors["pruned"] = max(self.cursors["pruned"], max(r.id for r in gone if r.id is not None))
        self.rows = [r for r in self.rows if r not in gone]
        return len(gone)

    # -- what server processes read (LogReader) --------------------------------------------
    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        if after < self.cursors["pruned"] or after > self.cursors["assigned"]:
            return Replay([], reset=True)
        found = sorted((r for r in self.rows if r.channel == channel and r.id is not None and r.id > after), key=_id)
        return Replay([self._logged(r) for r in found[:limit]], more=len(found) > limit)

    async def head(self, channel: str) -> int:
        return max(self._newest(channel) or 0, self.cursors["pruned"])

    async def run(self, fn: Any, *args: Any) -> Any:
        """There is no database here: a filtered subscription's column check is answered
        ``unavailable``, as it would be with the database down."""
        raise OSError("MemoryLog has no database to run SQL on")

    # -- helpers ---------------------------------------------------------------------------
    def _newest(self, channel: str, below: int | None = None) -> int | None:
        ids = [r.id for r in self.rows if r.channel == channel and r.id is not None and (below is None or r.id < below)]
        return max(ids) if ids else None

    def _logged(self, row: _Row) -> LoggedEvent:
        assert row.id is not None
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row.at)) + f".{int(row.at % 1 * 1e6):06d}Z"
        frame = dumps({"type": "event", "channel": row.channel, "id": row.id, **row.fields, "at": at})
        return LoggedEvent(row.id, row.prev, row.channel, frame)


def _id(row: _Row) -> int:
    assert row.id is not None
    return row.id
