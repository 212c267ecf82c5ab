"""``manage.py pgevents_serve``: thin arguments → ``serving.Processes`` (N daphne processes on one port)."""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgevents.delivery import serving


class Command(BaseCommand):
    help = (
        "Serve the project's ASGI application with several daphne processes on one port (SO_REUSEPORT): "
        "one per core by default. When one process exits the others are stopped, so a supervisor restarts "
        "the set. Arguments after -- go to every daphne process."
    )
    requires_system_checks = []  # every daphne process runs them as it starts

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=serving.default_count(),
            help="daphne processes (default: one per core, %(default)s here).",
        )
        parser.add_argument("-b", "--bind", default="127.0.0.1", help="Address to listen on (default: %(default)s).")
        parser.add_argument("-p", "--port", type=int, default=8000, help="Port (default: %(default)s).")
        parser.add_argument(
            "--application",
            help="ASGI application, dotted path (default: the ASGI_APPLICATION setting).",
        )
        parser.add_argument("daphne_args", nargs=argparse.REMAINDER, help="-- then daphne's own options")

    def handle(self, *args: Any, **options: Any) -> None:
        dotted = options["application"] or getattr(settings, "ASGI_APPLICATION", None)
        if not dotted:
            raise CommandError("No ASGI application: set ASGI_APPLICATION or pass --application.")
        if options["processes"] < 1:
            raise CommandError("--processes must be at least 1.")
        extra = list(options["daphne_args"])
        if extra[:1] == ["--"]:
            extra = extra[1:]
        try:
            processes = serving.Processes(
                serving.daphne_target(dotted), options["bind"], options["port"], options["processes"], extra
            )
            processes.start()
        except (ValueError, OSError, serving.ReusePortUnavailable) as exc:
            raise CommandError(f"Cannot serve on {options['bind']}:{options['port']}: {exc}") from exc
        self.stdout.write(
            f"pgevents_serve: {processes.count} daphne processes on {options['bind']}:{processes.port} "
            f"(pids {', '.join(str(c.pid) for c in processes.children)})",
        )
        self.stdout.flush()
        code = processes.wait()
        if code:
            raise SystemExit(code)
