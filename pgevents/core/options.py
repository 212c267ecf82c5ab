"""A watch's options: the one description shared by every way to configure a watch.

The migration operation (``pgevents.operations.Watch``: its arguments and ``deconstruct``),
the admin's ``Watch`` model and form, and ``pgevents_sync`` all describe a watch with
``WatchOptions``; ``pgevents.setup.installation.spec`` turns one, with its table, into the
triggers. A new option is a new field here (and in the trigger composition), nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pgevents.core.sql import ALL_EVENTS

#: A ``notify_referencing`` entry: ``"books"`` or ``{"table": ..., "channel": ..., ...}``.
Reference = str | Mapping[str, Any]


@dataclass(frozen=True)
class WatchOptions:
    """Everything about a watch but its table (a migration may name a model instead)."""

    channel: str
    schema: str = "public"
    events: tuple[str, ...] = ALL_EVENTS
    #: Send only these columns (empty: all).
    include: tuple[str, ...] = ()
    #: Never send these columns (sensitive-looking ones are added at install time).
    exclude: tuple[str, ...] = ()
    #: Log each change so clients can resume; ``None``: ``PGEVENTS["DURABLE"]``.
    durable: bool | None = None
    #: Wake the listener at commit (``False``: its next poll finds the event).
    notify: bool = True
    #: UPDATEs fire only when one of these columns changes (empty: when the row changes).
    update_columns: tuple[str, ...] = ()
    #: Tables whose foreign keys point at this one (see ``pgevents.setup.references``).
    notify_referencing: tuple[Reference, ...] = ()

    def __post_init__(self) -> None:
        # Lists from migrations, JSON fields and forms become tuples: options compare by value.
        for name in ("events", "include", "exclude", "update_columns"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        refs = tuple(r if isinstance(r, str) else dict(r) for r in self.notify_referencing)
        object.__setattr__(self, "notify_referencing", refs)

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> WatchOptions:
        """The options found in ``values`` (a model's fields, a form's data); others are ignored
        and missing ones keep their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def deconstruct(self) -> dict[str, Any]:
        """``channel`` and every option that differs from its default, as plain lists and dicts
        (what a migration file writes)."""
        defaults = WatchOptions(channel=self.channel)
        out: dict[str, Any] = {"channel": self.channel}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "channel" and value != getattr(defaults, f.name):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
