"""What one server process runs for pgevents: one runtime per event loop (one under daphne).

A runtime holds the process's shared database connection, the log reader over it, the hub
(fan-out), the pipeline's watchdog (is a listener heard from?) and the presence reporter, and runs whatever the project wired in with
``on_start`` (``apps.ready`` wires the embedded listener this way, so the delivery side
never imports the capture side). It is created on first use, by the first WebSocket or SSE
subscription of the loop; the first one of a process also sets the garbage collector for
many long-lived connections (``collector``).

Runtimes are keyed by the loop object itself, never by ``id(loop)`` (ids are reused once a
loop is gone). A runtime whose loop is closed (a sync client's or ``async_to_sync``'s loop
that ended) is dropped the next time any runtime is looked up, and its shared connection is
closed there and then, as are the connections of what the starters handed back with an
``abandon`` (the embedded listener's): nothing can await on a closed loop, and left to the
garbage collector the connections would stay open on the server for as long as the process lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from channels.layers import get_channel_layer

from pgevents import conf, metrics
from pgevents.delivery import collector
from pgevents.delivery.hub import Hub
from pgevents.delivery.presence import Reporter
from pgevents.store.db import SharedConnection
from pgevents.store.log import LogReader, Reader

logger = logging.getLogger(__name__)


class Started(Protocol):
    """What a starter returns: the task it started, and how to release what it holds (its
    connections) once its loop is closed and the task can never run again."""

    @property
    def task(self) -> asyncio.Task[Any]: ...

    def abandon(self) -> None: ...


#: ``(layer) -> Started or None``: more work a server process runs beside its hub.
Starter = Callable[[Any], "Started | None"]

_starters: list[Starter] = []
_runtimes: dict[asyncio.AbstractEventLoop, Runtime] = {}


def on_start(starter: Starter) -> None:
    """Run ``starter(layer)`` in every new runtime (once per starter)."""
    if starter not in _starters:
        _starters.append(starter)


class Runtime:
    def __init__(self, layer: Any, reader: LogReader | None = None) -> None:
        self.layer = layer
        self.connection = SharedConnection("pgevents-replay")
        self.hub = Hub(layer, Reader(self.connection) if reader is None else reader)
        self.reporter = Reporter(self.hub.count, self.connection)
        self.tasks: list[asyncio.Task[Any]] = []
        self.started: list[Started] = []

    def start(self) -> None:
        """Start the presence reporter, the pipeline's watchdog and the wired-in work on the running loop."""
        self.tasks.append(asyncio.ensure_future(self.reporter.run()))
        self.tasks.append(asyncio.ensure_future(self.hub.pipeline.run(lambda: self.hub.layer_ok)))
        for starter in _starters:
            started = starter(self.layer)
            if started is not None:
                self.tasks.append(started.task)
                self.started.append(started)

    def abandon(self) -> None:
        """Release what the runtime holds once its loop is closed (its tasks can never run again)."""
        self.connection.abandon()
        for started in self.started:
            started.abandon()


def _drop_closed() -> None:
    """Forget the runtimes of closed loops and close their connections.

    Loops run in other threads too (``async_to_sync``): the keys are copied before they are
    looked at, and only the caller that removes a runtime closes its connection.
    """
    for loop in list(_runtimes):
        if loop.is_closed():
            gone = _runtimes.pop(loop, None)
            if gone is not None:
                gone.abandon()


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the running loop's (tests use one over an in-memory log)."""
    _drop_closed()
    _runtimes[asyncio.get_running_loop()] = runtime
    metrics.register_scrape("hub", _gauges)
    return runtime


def current() -> Runtime:
    """The running loop's runtime, created and started on first use."""
    loop = asyncio.get_running_loop()
    _drop_closed()
    runtime = _runtimes.get(loop)
    if runtime is None:
        alias = conf.get().channel_layer
        layer = get_channel_layer(alias)
        if layer is None:
            raise RuntimeError(f"pgevents needs a channel layer: CHANNEL_LAYERS has no {alias!r}")
        runtime = install(Runtime(layer))
        if conf.get().tune_gc:
            collector.tune()  # a serving process: see ``collector``
        runtime.start()
    return runtime


def get_hub() -> Hub:
    """The hub of the running loop's runtime."""
    return current().hub


def hubs() -> list[Hub]:
    """The hubs of this process's live runtimes (one per event loop; one under daphne)."""
    _drop_closed()
    return [runtime.hub for loop, runtime in list(_runtimes.items()) if not loop.is_closed()]


def _gauges() -> list[tuple[str, str, list[str], list[tuple[list[str], float]]]]:
    counts: dict[str, int] = {}
    running = hubs()
    for hub in running:
        for channel, n in hub.count().items():
            counts[channel] = counts.get(channel, 0) + n
    return [
        (
            "pgevents_connected_clients",
            "Subscriptions (WebSocket or SSE) in this process, by channel.",
            ["channel"],
            [([channel], float(n)) for channel, n in sorted(counts.items())],
        ),
        (
            "pgevents_layer_ok",
            "1 when every hub of this process receives from the channel layer.",
            [],
            [([], float(all(h.layer_ok for h in running)))],
        ),
    ]
