"""``manage.py runlisten``: thin arguments → ``Listener`` → ``asyncio.run``.

Before it says it is ready, the channel layer answers a round trip (a wrong Redis URL fails
here, with the address); then one line says what runs: database, layer, channels, role.
When the project configures no logging for ``pgevents``, the command shows the listener's
log on stderr itself (``--verbosity``: 0 warnings, 1 info, 2 debug), so a fresh project sees
what happens without writing ``LOGGING`` first.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import psycopg
from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgevents import conf
from pgevents.capture import startup
from pgevents.capture.healthserver import HealthServer
from pgevents.capture.listener import Listener
from pgevents.capture.pacing import PACE, PACE_CAP, Pacing
from pgevents.core import identity


class Command(BaseCommand):
    help = (
        "Run the pgevents listener: LISTEN on PostgreSQL, sequence the event log and forward every "
        "event to the channel layer. Run two or more for fail-over: one is active, the others wait. "
        "Stops cleanly on SIGTERM/SIGINT."
    )
    listener_class = Listener
    requires_system_checks = []  # checks run at server start; the listener must start even if a warning fires

    def add_arguments(self, parser: CommandParser) -> None:
        settings = conf.get()
        parser.add_argument(
            "--database", default=settings.database, help="Django database alias to LISTEN on (default: %(default)s)."
        )
        parser.add_argument(
            "--layer", default=settings.channel_layer, help="Channel layer alias to forward to (default: %(default)s)."
        )
        parser.add_argument(
            "--channel",
            action="append",
            dest="channels",
            metavar="NAME",
            help="Plain-NOTIFY channel to LISTEN on and relay; repeat for several (default: "
            "PGEVENTS['NOTIFY_CHANNELS'], none unless listed). Any database role that can connect can "
            "NOTIFY any channel.",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=settings.poll_interval,
            help="Seconds between safety-net polls of the event log, which also probe the "
            "connection (default: %(default)s).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.batch_size,
            help="Events positioned and forwarded per round trip (default: %(default)s).",
        )
        parser.add_argument(
            "--coalesce",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="Least time between two runs of the sequencer: under a stream of commits, fewer and "
            "larger batches (less load on the database) for at most this much added latency (default: 0).",
        )
        parser.add_argument(
            "--pace",
            type=_non_negative,
            default=PACE,
            metavar="FACTOR",
            help="While the log is polled under a stream, pause after a look that found several events "
            "about FACTOR times as long as that look took (at most --pace-cap): larger batches, fewer "
            "sequencer commits, for a little latency under heavy streams only; 0: look again at once "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--pace-cap",
            type=_non_negative,
            default=PACE_CAP,
            metavar="SECONDS",
            help="The longest such pause (default: %(default)s).",
        )
        parser.add_argument(
            "--health-port",
            type=int,
            metavar="PORT",
            help="Serve /health (JSON: active, standby or connecting) and /metrics (Prometheus) on this port.",
        )
        parser.add_argument(
            "--health-host",
            default="127.0.0.1",
            help="Address for --health-port (default: %(default)s; use an internal address, not a public one).",
        )
        parser.add_argument(
            "--no-lock",
            action="store_true",
            help="Do not take the advisory lock that makes one listener active at a time.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from channels.layers import InMemoryChannelLayer, get_channel_layer

        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError(f"No channel layer {options['layer']!r}: configure CHANNEL_LAYERS.")
        if isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                "The in-memory channel layer cannot reach another process: use channels_redis, "
                "or let the ASGI server run the listener itself (PGEVENTS['EMBEDDED_LISTENER'])."
            )
        self._show_logs(options["verbosity"])
        asyncio.run(self._run(layer, options))

    def _show_logs(self, verbosity: int) -> None:
        """A stderr handler for ``pgevents`` unless the project's LOGGING already has one."""
        logger = logging.getLogger("pgevents")
        if logger.hasHandlers():
            return
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))

    async def _run(self, layer: Any, options: dict[str, Any]) -> None:
        alias = options["layer"]
        described = startup.layer_description(alias, (getattr(django_settings, "CHANNEL_LAYERS", {}) or {}).get(alias))
        try:
            await startup.check_layer(layer)
        except startup.LayerUnavailable as exc:
            raise CommandError(
                f"The channel layer {described} did not answer: {exc}. Check CHANNEL_LAYERS "
                "(is Redis running at that address?)."
            ) from None
        announced = False

        def on_role(role: str, conn: psycopg.AsyncConnection[Any]) -> None:
            nonlocal announced
            if announced or options["verbosity"] < 1:
                return
            announced = True
            database = startup.database_description(options["database"], conn)
            line = startup.ready_line(role, database, described, listener.channels, identity.process())
            self.stdout.write(line)
            self.stdout.flush()

        listener = self.listener_class(
            layer=layer,
            database=options["database"],
            channels=options["channels"],
            poll_interval=options["poll_interval"],
            batch_size=options["batch_size"],
            use_lock=not options["no_lock"],
            coalesce=options.get("coalesce") or 0.0,
            pacing=Pacing(options.get("pace", PACE), options.get("pace_cap", PACE_CAP)),
            on_role=on_role,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, listener.stop)
        health = None
        if options.get("health_port") is not None:
            health = HealthServer(listener, options["health_host"], options["health_port"])
            await health.start()
        try:
            await listener.run()
        finally:
            if health is not None:
                await health.close()


def _non_negative(text: str) -> float:
    """An option's value: a number of at least 0 (argparse reports anything else)."""
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


_non_negative.__name__ = "non-negative number"  # argparse's "invalid <name> value" message
